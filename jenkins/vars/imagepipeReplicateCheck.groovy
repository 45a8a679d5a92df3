// imagepipeReplicateCheck(tag: env.TAG_NAME, wait: '2h') after imagepipePublish. Returns the
// --json result: complete, files, and per site its verdict, files, age and SLA. Exit code 1 (a
// site is not complete at the deadline) fails the build (or, with onCheckFailure: 'unstable',
// marks it UNSTABLE).
def call(Map args = [:]) {
    return imagepipeStep('imagepipe-replicate-check', args, [
        record            : 'IMAGEPIPE_RECORD',
        image             : 'IMAGEPIPE_IMAGE',
        version           : 'IMAGEPIPE_VERSION',
        tag               : 'IMAGEPIPE_TAG',
        sites             : 'IMAGEPIPE_SITES',
        triggerReplication: 'IMAGEPIPE_TRIGGER_REPLICATION',
        wait              : 'IMAGEPIPE_WAIT',
        concurrency       : 'IMAGEPIPE_CONCURRENCY',
        siteTimeout       : 'IMAGEPIPE_SITE_TIMEOUT',
        pollInterval      : 'IMAGEPIPE_POLL_INTERVAL',
        requestsPerSite   : 'IMAGEPIPE_REQUESTS_PER_SITE',
        store             : 'IMAGEPIPE_STORE',
        config            : 'IMAGEPIPE_CONFIG',
    ])
}
