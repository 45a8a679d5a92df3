// Runs one imagepipe step binary with the step contract mapped onto Jenkins:
//   - arguments become IMAGEPIPE_* environment variables (never command-line text, so values
//     cannot inject shell syntax); unknown and null arguments are an error;
//   - credentials are bound with withCredentials from credentials IDs, under the variable names
//     imagepipe.toml gives (token_env, username_env, password_env):
//       credentials: [ARTIFACTORY_TOKEN: 'art-token']          secret text
//       usernamePasswords: [VC_EAST: 'vc-east']                 VC_EAST_USER and VC_EAST_PASSWORD
//   - the --json result is parsed (readJSON) and returned;
//   - the record and every report the step wrote (named in its --json) are archived, the scan's
//     JUnit report goes to junit and its SARIF to recordIssues (Warnings Next Generation);
//   - exit code 1 (the step's check failed, e.g. the scan's gate) fails the build with error(),
//     which stops the pipeline before publish, or marks it UNSTABLE with onCheckFailure:
//     'unstable'; exit code 2 always fails it.
// Every step also takes archive: false (archive and publish nothing).
def call(String binary, Map args, Map envNames) {
    def common = ['credentials', 'usernamePasswords', 'onCheckFailure', 'archive']
    def nulls = args.findAll { k, v -> v == null }.keySet()
    if (nulls) {
        error("${binary}: argument(s) ${nulls.sort().join(', ')} are null; leave them out to use the default")
    }
    def unknown = args.keySet().findAll { !envNames.containsKey(it) && !common.contains(it) }
    if (unknown) {
        error("${binary}: unknown argument(s) ${unknown.sort().join(', ')}; known: ${(envNames.keySet() + common).sort().join(', ')}")
    }
    def onCheckFailure = args.onCheckFailure ?: 'error'
    if (!(onCheckFailure in ['error', 'unstable'])) {
        error("${binary}: onCheckFailure is '${onCheckFailure}'; use 'error' (the default: stop the pipeline) or 'unstable'")
    }
    def bindings = []
    (args.credentials ?: [:]).each { variable, id ->
        bindings << string(credentialsId: id, variable: variable)
    }
    (args.usernamePasswords ?: [:]).each { prefix, id ->
        bindings << usernamePassword(credentialsId: id, usernameVariable: "${prefix}_USER", passwordVariable: "${prefix}_PASSWORD")
    }
    def envList = args.findAll { k, v -> envNames.containsKey(k) }.collect { k, v -> "${envNames[k]}=${v}" }
    envList << 'IMAGEPIPE_PROGRESS=lines'
    def out = "${binary}-${UUID.randomUUID()}.json"
    def status
    withEnv(envList) {
        withCredentials(bindings) {
            status = sh(script: "${binary} --json > '${out}'", returnStatus: true)
        }
    }
    def result = fileExists(out) && readFile(out).trim() ? readJSON(file: out) : [:]
    sh(script: "rm -f '${out}'", returnStatus: true)
    if (args.archive != false) {
        publishReports(binary, result)
    }
    if (status == 1) {
        def why = "${binary}: the step's check failed (exit code 1); see the log above"
        if (onCheckFailure == 'unstable') {
            unstable(why)
        } else {
            error(why)
        }
    } else if (status != 0) {
        error("${binary} failed with exit code ${status}; see the log above")
    }
    return result
}

// The files a step's --json names, as paths relative to the workspace (what archiveArtifacts,
// junit and recordIssues take).
def publishReports(String binary, Map result) {
    def workspace = "${env.WORKSPACE}/"
    def rel = { String p -> p.startsWith(workspace) ? p.substring(workspace.length()) : p }
    def files = []
    if (result.record) {
        files << rel(result.record as String)
    }
    def reports = (result.reports ?: []).collect { [kind: it.kind as String, path: rel(it.path as String)] }
    files.addAll(reports*.path)
    if (!files) {
        return
    }
    archiveArtifacts(artifacts: files.join(','), fingerprint: true)
    reports.findAll { it.kind == 'junit' }.each { junit(testResults: it.path) }
    reports.findAll { it.kind == 'sarif' }.each {
        recordIssues(tools: [sarif(pattern: it.path, id: 'imagepipe-scan', name: 'imagepipe scan')])
    }
}
