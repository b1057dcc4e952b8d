//! Every published conformance case passes through the library's runner (the same code
//! as `sluice test`).

use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_conformance_cases_pass() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance");
    let dir = std::env::var_os("SLUICE_CONFORMANCE").map(PathBuf::from).unwrap_or(dir);
    assert!(dir.is_dir(), "conformance cases expected at {}", dir.display());
    let mut out = Vec::new();
    let summary = sluice::testing::runner::run_cases(&[dir], &mut out)
        .await
        .expect("runner");
    let text = String::from_utf8_lossy(&out);
    assert!(summary.passed >= 8, "{text}");
    assert_eq!(summary.failed, 0, "{text}");
    assert!(
        text.trim_end()
            .ends_with(&format!("{} passed, 0 failed", summary.passed)),
        "{text}"
    );
}
