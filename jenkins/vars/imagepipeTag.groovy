// imagepipeTag(push: true) after a merge; imagepipeTag(cascadeFrom: "${image}@${version}", push: true)
// after publishing a parent. Returns the --json result: created (tag names) and planned.
// Bind the GitHub token for the review gate with
//   withCredentials([string(credentialsId: 'github-app-token', variable: 'IMAGEPIPE_GITHUB_TOKEN')]) { ... }
def call(Map args = [:]) {
    return imagepipeStep('imagepipe-tag', args, [
        image       : 'IMAGEPIPE_IMAGE',
        cascadeFrom : 'IMAGEPIPE_CASCADE_FROM',
        commit      : 'IMAGEPIPE_COMMIT',
        via         : 'IMAGEPIPE_TAG_VIA',
        push        : 'IMAGEPIPE_PUSH',
        remote      : 'IMAGEPIPE_REMOTE',
        repository  : 'IMAGEPIPE_GITHUB_REPOSITORY',
        noReviewGate: 'IMAGEPIPE_NO_REVIEW_GATE',
        dryRun      : 'IMAGEPIPE_DRY_RUN',
        config      : 'IMAGEPIPE_CONFIG',
    ])
}
