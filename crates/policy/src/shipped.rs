//! The default policy pack (`policies/` at the repository root), compiled into the binary.

use std::collections::BTreeMap;

use crate::{Pack, PolicyError};

/// Each file of `policies/` that belongs to the pack: every `*.rego` and `data.json`.
/// (A test checks this list against the directory.)
const FILES: &[(&str, &str)] = &[
    ("data.json", include_str!("../../../policies/data.json")),
    (
        "environment_limit.rego",
        include_str!("../../../policies/environment_limit.rego"),
    ),
    (
        "environment_limit_test.rego",
        include_str!("../../../policies/environment_limit_test.rego"),
    ),
    ("naming.rego", include_str!("../../../policies/naming.rego")),
    (
        "naming_test.rego",
        include_str!("../../../policies/naming_test.rego"),
    ),
    (
        "prod_approval.rego",
        include_str!("../../../policies/prod_approval.rego"),
    ),
    (
        "prod_approval_test.rego",
        include_str!("../../../policies/prod_approval_test.rego"),
    ),
    ("quota.rego", include_str!("../../../policies/quota.rego")),
    (
        "quota_test.rego",
        include_str!("../../../policies/quota_test.rego"),
    ),
    (
        "regions.rego",
        include_str!("../../../policies/regions.rego"),
    ),
    (
        "regions_test.rego",
        include_str!("../../../policies/regions_test.rego"),
    ),
    (
        "resource_types.rego",
        include_str!("../../../policies/resource_types.rego"),
    ),
    (
        "resource_types_test.rego",
        include_str!("../../../policies/resource_types_test.rego"),
    ),
];

/// The shipped pack's files, name → content.
pub fn shipped_files() -> BTreeMap<String, String> {
    FILES
        .iter()
        .map(|(name, source)| ((*name).to_owned(), (*source).to_owned()))
        .collect()
}

/// The shipped pack, compiled. It always compiles (its tests say so); an error here is a
/// bug in the build, reported rather than panicking.
pub fn shipped() -> Result<Pack, PolicyError> {
    Pack::from_files(&shipped_files())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_policies_directory_is_shipped() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
        let on_disk = Pack::from_dir(&dir).expect("the policies directory compiles");
        assert_eq!(on_disk.files(), &shipped_files());
    }
}
