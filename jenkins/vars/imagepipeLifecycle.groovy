// imagepipeLifecycle(command: 'promote', image: 'global/debian-12', version: '1.4.0',
// channel: 'prod'), or command: 'rollback', 'history', 'revoke' (reason:, cascade:, at:),
// 'prune' or 'retain' (keep:, keepHistory:, apply:). Returns the --json result. Exit code 2
// (another promotion won a race, a revocation stopped half way, a library could not be
// pruned, or any usage, configuration or store error) fails the build.
def call(Map args = [:]) {
    return imagepipeStep('imagepipe-lifecycle', args, [
        command: 'IMAGEPIPE_LIFECYCLE_COMMAND',
        image  : 'IMAGEPIPE_IMAGE',
        version: 'IMAGEPIPE_VERSION',
        channel: 'IMAGEPIPE_CHANNEL',
        reason : 'IMAGEPIPE_REASON',
        cascade: 'IMAGEPIPE_CASCADE',
        at     : 'IMAGEPIPE_REVOKE_AT',
        apply  : 'IMAGEPIPE_APPLY',
        keep   : 'IMAGEPIPE_RETAIN',
        keepHistory: 'IMAGEPIPE_RETAIN_HISTORY',
        sites  : 'IMAGEPIPE_SITES',
        store  : 'IMAGEPIPE_STORE',
        config : 'IMAGEPIPE_CONFIG',
    ])
}
