//! The benchmark summaries at their smallest sizes: every row is there with a measured
//! number. Figures are never asserted: CI machines are shared and noisy.

use std::process::{Command, Output};

fn paddock(args: &[&str], postgres: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
    cmd.args(args).env_remove("PADDOCK_BENCH_POSTGRES_URL");
    if let Some(url) = postgres {
        cmd.env("PADDOCK_BENCH_POSTGRES_URL", url);
    }
    let out = cmd.output().expect("running paddock");
    assert!(
        out.status.success(),
        "paddock {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The table's rows as cells, header and separator left out.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

fn has_number(cell: &str) -> bool {
    cell.chars().any(|c| c.is_ascii_digit()) && !cell.contains("NaN")
}

#[test]
fn the_suite_prints_every_figure_on_both_databases() {
    let postgres = paddock_store::testing::admin_url();
    let out = paddock(&["bench", "suite", "--size", "tiny"], postgres.as_deref());
    let table = String::from_utf8_lossy(&out.stdout);
    let rows = rows(&table);
    let figures: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    for (section, starts) in [
        ("engine", "`up` of 100 resources"),
        ("engine", "no-op plan / state read"),
        ("provision", "1 environments at once"),
        ("provision", "a fleet at GitHub's 80"),
        ("API", "GET /api/v1/teams/{team}/environments:"),
        ("API", "GET /api/v1/teams/{team}/environments/{env}:"),
        ("API", "PUT /api/v1/teams/{team}/environments/{env}/expiry:"),
        ("API", "throughput"),
        (
            "serve",
            "peak memory (VmHWM) with 10 environments in flight",
        ),
    ] {
        assert!(
            figures
                .iter()
                .any(|(s, f)| *s == section && f.starts_with(starts)),
            "no row `{section} | {starts}…` in:\n{table}"
        );
    }
    for r in &rows {
        assert_eq!(r.len(), 4, "a row of four cells: {r:?}");
        assert!(has_number(&r[2]), "no SQLite figure in {r:?}");
        match (r[0].as_str(), &postgres) {
            ("engine" | "provision", _) => assert_eq!(r[3], "— (SQLite only)"),
            (_, Some(_)) => assert!(has_number(&r[3]), "no PostgreSQL figure in {r:?}"),
            (_, None) => assert!(r[3].starts_with("not run: no PostgreSQL"), "{r:?}"),
        }
    }
    for r in rows
        .iter()
        .filter(|r| r[0] == "API" && !r[1].starts_with("throughput"))
    {
        assert!(r[2].contains(", 0 errors)"), "errors under load: {r:?}");
    }
}

#[test]
fn growth_prints_each_figure_per_size_and_per_step() {
    let out = paddock(
        &[
            "bench",
            "growth",
            "--sizes",
            "20,40",
            "--requests",
            "2",
            "--plans",
            "1",
        ],
        None,
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let rows = rows(&table);
    for name in [
        "portal home `/` (ms)",
        "portal team `/teams/t0000` (ms)",
        "portal environment (ms)",
        "portal audit `/audit` (ms)",
        "API `GET /api/v1/teams` (ms)",
        "plan: dry run of a new environment, 4 stacks (ms)",
        "serve peak memory (MiB)",
        "database (MiB)",
    ] {
        let row = rows
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no row `{name}` in:\n{table}"));
        assert_eq!(
            row.len(),
            4,
            "a figure at 20 and at 40, and the ratio: {row:?}"
        );
        assert!(row[1..].iter().all(|c| has_number(c)), "{row:?}");
        assert!(row[3].contains('×'), "{row:?}");
    }
}
