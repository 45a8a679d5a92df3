//! `steps/build/action.yml` and `imagepipe-build` agree.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::step;

#[test]
fn action_inputs_and_outputs_match_the_cli() {
    let outputs = step::check_action(
        concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml"),
        env!("CARGO_BIN_EXE_imagepipe-build"),
        &["IMAGEPIPE_GITHUB_TOKEN"],
    );
    // Which outputs the step writes is checked by the build test
    // `github_outputs_summary_and_annotations`.
    assert!(outputs.contains(&"record".to_string()));
}
