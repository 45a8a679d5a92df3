// imagepipePublish(tag: env.TAG_NAME) after imagepipeScan. Returns the --json result:
// record_url, record_sha256, artifacts. Exit code 1 (scan gate refused, or the version is
// already published with other bytes) fails the build (or, with onCheckFailure: 'unstable', marks
// it UNSTABLE). Bind the store's token with credentials: [ARTIFACTORY_TOKEN: 'art-token'].
def call(Map args = [:]) {
    return imagepipeStep('imagepipe-publish', args, [
        record      : 'IMAGEPIPE_RECORD',
        image       : 'IMAGEPIPE_IMAGE',
        version     : 'IMAGEPIPE_VERSION',
        tag         : 'IMAGEPIPE_TAG',
        overrideGate: 'IMAGEPIPE_OVERRIDE_GATE',
        buildName   : 'IMAGEPIPE_BUILD_NAME',
        buildNumber : 'IMAGEPIPE_BUILD_NUMBER',
        buildInfo   : 'IMAGEPIPE_BUILD_INFO',
        store       : 'IMAGEPIPE_STORE',
        config      : 'IMAGEPIPE_CONFIG',
    ])
}
