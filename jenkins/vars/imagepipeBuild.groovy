// imagepipeBuild(tag: env.TAG_NAME) or imagepipeBuild(image: 'global/debian-12', version: '1.4.0')
// Returns the --json result: image, version, record, record_sha256, record_content.
def call(Map args = [:]) {
    return imagepipeStep('imagepipe-build', args, [
        image       : 'IMAGEPIPE_IMAGE',
        version     : 'IMAGEPIPE_VERSION',
        tag         : 'IMAGEPIPE_TAG',
        parent      : 'IMAGEPIPE_PARENT',
        parentRecord: 'IMAGEPIPE_PARENT_RECORD',
        outputDir   : 'IMAGEPIPE_OUTPUT_DIR',
        record      : 'IMAGEPIPE_RECORD',
        timeout     : 'IMAGEPIPE_BUILD_TIMEOUT',
        interruptGrace: 'IMAGEPIPE_INTERRUPT_GRACE',
        force       : 'IMAGEPIPE_FORCE',
        via         : 'IMAGEPIPE_TAG_VIA',
        repository  : 'IMAGEPIPE_GITHUB_REPOSITORY',
        dryRun      : 'IMAGEPIPE_DRY_RUN',
        config      : 'IMAGEPIPE_CONFIG',
    ])
}
