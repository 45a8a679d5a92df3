// imagepipeScan(tag: env.TAG_NAME, osvDb: '/srv/osv') after imagepipeBuild, then
// junit 'out/**/scan.junit.xml'. Returns the --json result: os, packages, findings, passed.
// Exit code 1 (the gate failed) marks the build UNSTABLE; imagepipePublish then refuses.
def call(Map args = [:]) {
    return imagepipeStep('imagepipe-scan', args, [
        record  : 'IMAGEPIPE_RECORD',
        image   : 'IMAGEPIPE_IMAGE',
        version : 'IMAGEPIPE_VERSION',
        tag     : 'IMAGEPIPE_TAG',
        osvDb   : 'IMAGEPIPE_OSV_DB',
        maxDbAge: 'IMAGEPIPE_MAX_DB_AGE',
        staleDb : 'IMAGEPIPE_STALE_DB',
        artifact: 'IMAGEPIPE_ARTIFACT',
        input   : 'IMAGEPIPE_SCAN_INPUT',
        config  : 'IMAGEPIPE_CONFIG',
    ])
}
