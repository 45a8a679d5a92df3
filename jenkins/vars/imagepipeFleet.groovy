// imagepipeFleet() anywhere (a nightly job, after an import). Returns the --json result: the
// sites, and per image its versions with scan state, parent, per-site presence, imports and
// whether it is out of date. The view is reported, not judged: it does not fail the build.
def call(Map args = [:]) {
    return imagepipeStep('imagepipe-fleet', args, [
        concurrency: 'IMAGEPIPE_CONCURRENCY',
        config     : 'IMAGEPIPE_CONFIG',
        html       : 'IMAGEPIPE_HTML',
    ])
}
