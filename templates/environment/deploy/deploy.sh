#!/usr/bin/env bash
# Deploys the application to one stage: Azure resources into the stage's resource group,
# then the Kubernetes manifests into the stage's namespace. Run by the workflows with the
# stage's GitHub environment; also runnable by hand with the same variables.
set -euo pipefail

: "${AZURE_RESOURCE_GROUP:?set by the GitHub environment}"
: "${K8S_NAMESPACE:?set by the GitHub environment}"
: "${KUBECONFIG_DATA:?the KUBECONFIG secret of the GitHub environment}"
version="${1:-${GITHUB_SHA:-local}}"

echo "Deploying ${version} to resource group ${AZURE_RESOURCE_GROUP} and namespace ${K8S_NAMESPACE}"

# Azure: the stage's identity is Contributor on its resource group and nowhere else.
az group show --name "$AZURE_RESOURCE_GROUP" --output none
az deployment group create --resource-group "$AZURE_RESOURCE_GROUP" \
  --template-file deploy/azure.bicep --parameters version="$version" --output none

# Kubernetes: the namespace's own service account, which cannot leave the namespace.
kubeconfig="$(mktemp)"
trap 'rm -f "$kubeconfig"' EXIT
printf '%s' "$KUBECONFIG_DATA" > "$kubeconfig"
export KUBECONFIG="$kubeconfig"
sed "s/__VERSION__/${version}/g" k8s/app.yaml | kubectl apply --namespace "$K8S_NAMESPACE" --server-side -f -
kubectl rollout status deployment/app --namespace "$K8S_NAMESPACE" --timeout=5m
