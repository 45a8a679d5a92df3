// imagepipeLifecycle(command: 'promote', image: 'global/debian-12', version: '1.4.0',
// channel: 'prod'), or command: 'rollback', 'history', 'revoke' (reason:, cascade:, at:),
// 'prune' or 'retain' (keep:, apply:). Returns the --json result. Exit code 1 (another
// promotion won a race, or a library could not be pruned) fails the build (or, with
// onCheckFailure: 'unstable', marks it UNSTABLE).
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
        sites  : 'IMAGEPIPE_SITES',
        store  : 'IMAGEPIPE_STORE',
        config : 'IMAGEPIPE_CONFIG',
    ])
}
