// imagepipeScan(tag: env.TAG_NAME, osvDb: '/srv/osv') after imagepipeBuild. Archives the record
// and every report the scan wrote, publishes the JUnit report (junit) and the SARIF findings
// (recordIssues), and returns the --json result: os, packages, findings, passed, record, reports.
// Exit code 1 (the gate failed) fails the build before publish; with onCheckFailure: 'unstable'
// it marks it UNSTABLE, and imagepipePublish then refuses. A rescan of published versions in
// place (published: 'IMAGE@VERSION' or allPublished: true, a timer job) returns
// [store, rescans, revoked, errors]; exit code 1 there is a new finding at or above failOnNew
// (or revokeOnNew, which also revokes that version with its descendants).
def call(Map args = [:]) {
    return imagepipeStep('imagepipe-scan', args, [
        record  : 'IMAGEPIPE_RECORD',
        image   : 'IMAGEPIPE_IMAGE',
        version : 'IMAGEPIPE_VERSION',
        tag     : 'IMAGEPIPE_TAG',
        osvDb   : 'IMAGEPIPE_OSV_DB',
        msrcDb  : 'IMAGEPIPE_MSRC_DB',
        maxDbAge: 'IMAGEPIPE_MAX_DB_AGE',
        staleDb : 'IMAGEPIPE_STALE_DB',
        artifact: 'IMAGEPIPE_ARTIFACT',
        input   : 'IMAGEPIPE_SCAN_INPUT',
        published   : 'IMAGEPIPE_PUBLISHED',
        allPublished: 'IMAGEPIPE_ALL_PUBLISHED',
        failOnNew   : 'IMAGEPIPE_FAIL_ON_NEW',
        revokeOnNew : 'IMAGEPIPE_REVOKE_ON_NEW',
        store       : 'IMAGEPIPE_STORE',
        config  : 'IMAGEPIPE_CONFIG',
    ])
}
