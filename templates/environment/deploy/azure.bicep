// The application's Azure resources, deployed into the stage's resource group.
param version string
param location string = resourceGroup().location

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st${uniqueString(resourceGroup().id)}'
  location: location
  sku: { name: 'Standard_LRS' }
  kind: 'StorageV2'
  tags: { version: version }
  properties: { minimumTlsVersion: 'TLS1_2', allowBlobPublicAccess: false }
}
