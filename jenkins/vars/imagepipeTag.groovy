// imagepipeTag(push: true) after a merge; imagepipeTag(cascadeFrom: "${image}@${version}", push: true)
// after publishing a parent. Returns the --json result: created (tag names) and planned.
// Bind the GitHub token for the review gate with credentials: [IMAGEPIPE_GITHUB_TOKEN: 'github-app-token'].
// imagepipeTag(parse: env.TAG_NAME) returns the image and version a tag names, and does nothing else.
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
        parse       : 'IMAGEPIPE_PARSE',
        dryRun      : 'IMAGEPIPE_DRY_RUN',
        config      : 'IMAGEPIPE_CONFIG',
    ])
}
