// imagepipeImport(tag: env.TAG_NAME) after imagepipeReplicateCheck. Returns the --json result:
// per site, library, item, item_id, item_version and whether it changed. A site that could not
// be imported fails the build (exit 2) after the other sites are done.
def call(Map args = [:]) {
    return imagepipeStep('imagepipe-import', args, [
        record    : 'IMAGEPIPE_RECORD',
        image     : 'IMAGEPIPE_IMAGE',
        version   : 'IMAGEPIPE_VERSION',
        tag       : 'IMAGEPIPE_TAG',
        sites     : 'IMAGEPIPE_SITES',
        itemName  : 'IMAGEPIPE_ITEM_NAME',
        layout    : 'IMAGEPIPE_LAYOUT',
        keep      : 'IMAGEPIPE_KEEP',
        transfer  : 'IMAGEPIPE_TRANSFER',
        vsphereApi: 'IMAGEPIPE_VSPHERE_API',
        artifact  : 'IMAGEPIPE_ARTIFACT',
        syncWait  : 'IMAGEPIPE_SYNC_WAIT',
        keepAlive : 'IMAGEPIPE_KEEP_ALIVE',
        allowMissingManifest: 'IMAGEPIPE_ALLOW_MISSING_MANIFEST',
        concurrency: 'IMAGEPIPE_CONCURRENCY',
        deployCheck: 'IMAGEPIPE_DEPLOY_CHECK',
        deployWait: 'IMAGEPIPE_DEPLOY_WAIT',
        config    : 'IMAGEPIPE_CONFIG',
    ])
}
