//! Every recorded case passes through the library's runner (the same code as
//! `sluice test`): the repository's own (`queries/*/cases`, `tests/cases`) always, and the
//! published conformance cases when they are present (`SLUICE_CONFORMANCE`, or
//! `../shared/conformance` beside the clone).

use std::path::PathBuf;

/// The folders of recorded cases inside the repository.
fn repository_case_folders() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut folders: Vec<PathBuf> = std::fs::read_dir(root.join("queries"))
        .unwrap()
        .map(|e| e.unwrap().path().join("cases"))
        .filter(|p| p.is_dir())
        .collect();
    folders.push(root.join("tests/cases"));
    folders.retain(|p| p.is_dir());
    folders.sort();
    folders
}

async fn run(folders: Vec<PathBuf>, at_least: usize) {
    let mut out = Vec::new();
    let summary = sluice::testing::runner::run_cases(&folders, &mut out)
        .await
        .expect("runner");
    let text = String::from_utf8_lossy(&out);
    assert!(summary.passed >= at_least, "{text}");
    assert_eq!(summary.failed, 0, "{text}");
    assert!(
        text.trim_end()
            .ends_with(&format!("{} passed, 0 failed", summary.passed)),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_recorded_cases_pass() {
    let folders = repository_case_folders();
    assert!(!folders.is_empty());
    run(folders, 21).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_conformance_cases_pass_when_present() {
    let dir = std::env::var_os("SLUICE_CONFORMANCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance"));
    if !dir.is_dir() {
        // A plain clone has no published cases; scripts/test.sh says so on its own line.
        eprintln!("no published conformance cases at {}", dir.display());
        return;
    }
    run(vec![dir], 8).await;
}
