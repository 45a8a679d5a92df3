// Runs one imagepipe step binary with the step contract mapped onto Jenkins:
//   - arguments become IMAGEPIPE_* environment variables (never command-line text, so values
//     cannot inject shell syntax); unknown arguments are an error;
//   - --json output is parsed and returned;
//   - exit code 1 (the step's check failed) marks the build UNSTABLE, 2 fails it.
//
// Secrets are bound by the caller with withCredentials around the step; imagepipe reads them
// from the variables imagepipe.toml names.
def call(String binary, Map args, Map envNames) {
    def unknown = args.keySet().findAll { !envNames.containsKey(it) }
    if (unknown) {
        error("${binary}: unknown argument(s) ${unknown.sort().join(', ')}; known: ${envNames.keySet().sort().join(', ')}")
    }
    def envList = args.collect { k, v -> "${envNames[k]}=${v}" }
    envList << 'IMAGEPIPE_PROGRESS=lines'
    def out = "${binary}-${UUID.randomUUID()}.json"
    def status
    withEnv(envList) {
        status = sh(script: "${binary} --json > '${out}'", returnStatus: true)
    }
    def result = fileExists(out) && readFile(out).trim() ? readJSON(file: out) : [:]
    sh(script: "rm -f '${out}'", returnStatus: true)
    if (status == 1) {
        unstable("${binary}: the step's check failed; see the log above")
    } else if (status != 0) {
        error("${binary} failed with exit code ${status}; see the log above")
    }
    return result
}
