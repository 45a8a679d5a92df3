// Runs the shared library's steps (vars/*.groovy) with mocked pipeline steps, the way
// JenkinsPipelineUnit does (no Maven here: Debian's groovy runs it), and checks the calls they
// make: exit-code mapping, credentials bound, files archived and published, bad arguments.
//
//   groovy jenkins/test/harness.groovy        (exit 0: every case passed)
//   groovy jenkins/test/harness.groovy archived STEP RESULT.json WORKSPACE STATUS
//       runs STEP as if its binary had exited with STATUS and printed RESULT.json (a real
//       step's --json), in WORKSPACE, and prints what it archived and published as JSON: the
//       steps' own tests compare that with the files the binary wrote.

import groovy.json.JsonOutput
import groovy.json.JsonSlurper

def vars = new File(new File(getClass().protectionDomain.codeSource.location.path).parentFile.parentFile, 'vars')
if (!vars.isDirectory()) {
    vars = new File('jenkins/vars')
}

class Failed extends RuntimeException {
    Failed(String m) { super(m) }
}

// One run of a step: the pipeline steps it called, in order, with a scripted sh.
class Run {
    List calls = []
    Map env = [WORKSPACE: '/ws']
    List envStack = []
    List credStack = []
    int status = 0
    String json = null

    Binding binding(File vars) {
        def b = new Binding()
        def shell = new GroovyShell(b)
        def scripts = [:]
        vars.listFiles().findAll { it.name.endsWith('.groovy') }.each { f ->
            def name = f.name - '.groovy'
            scripts[name] = shell.parse(f)
            b.setVariable(name, { Object[] a -> scripts[name].invokeMethod('call', a) })
        }
        b.setVariable('env', env)
        b.setVariable('error', { String m -> calls << [step: 'error', message: m]; throw new Failed(m) })
        b.setVariable('unstable', { String m -> calls << [step: 'unstable', message: m] })
        b.setVariable('withEnv', { List l0, Closure c -> def l = l0*.toString(); calls << [step: 'withEnv', env: l]; envStack.push(l); try { c() } finally { envStack.pop() } })
        b.setVariable('string', { Map m -> [kind: 'string'] + strings(m) })
        b.setVariable('usernamePassword', { Map m -> [kind: 'usernamePassword'] + strings(m) })
        b.setVariable('withCredentials', { List l, Closure c -> calls << [step: 'withCredentials', bindings: l]; credStack.push(l); try { c() } finally { credStack.pop() } })
        b.setVariable('sh', { Map m ->
            calls << [step: 'sh', script: m.script, env: envStack.flatten(), credentials: credStack.flatten()]
            m.script.startsWith('rm ') ? 0 : status
        })
        b.setVariable('fileExists', { String p -> json != null })
        b.setVariable('readFile', { String p -> json })
        b.setVariable('readJSON', { Map m -> calls << [step: 'readJSON', file: m.file]; new JsonSlurper().parseText(json) })
        b.setVariable('archiveArtifacts', { Map m -> calls << [step: 'archiveArtifacts'] + m })
        b.setVariable('junit', { Map m -> calls << [step: 'junit'] + m })
        b.setVariable('sarif', { Map m -> [tool: 'sarif'] + m })
        b.setVariable('recordIssues', { Map m -> calls << [step: 'recordIssues'] + m })
        scripts.each { n, s -> s.binding = b }
        return b
    }

    List of(String step) { calls.findAll { it.step == step } }

    // Jenkins takes GStrings where Strings go; compared here as Strings.
    static Map strings(Map m) { m.collectEntries { k, v -> [k, v instanceof GString ? v.toString() : v] } }
}

def failures = []
def check = { String name, Closure body ->
    try {
        body()
        println "ok   ${name}"
    } catch (Throwable t) {
        failures << name
        println "FAIL ${name}: ${t.message}"
    }
}
def expect = { cond, what -> if (!cond) throw new RuntimeException('' + what) }
// Runs `step(args)` and returns [run, error message or null].
def run = { String step, Map args, int status, Object json ->
    def r = new Run(status: status, json: json == null ? null : JsonOutput.toJson(json))
    def b = r.binding(vars)
    def message = null
    def result = null
    try {
        result = b.getVariable(step).call(args)
    } catch (Failed f) {
        message = f.message
    }
    [r, message, result]
}

if (args && args[0] == 'archived') {
    def (_, step, resultFile, workspace, status) = args as List
    def r = new Run(status: status as int, json: new File(resultFile).text)
    r.env.WORKSPACE = workspace
    def b = r.binding(vars)
    def message = null
    try {
        b.getVariable(step).call([:])
    } catch (Failed f) {
        message = f.message
    }
    println JsonOutput.toJson([
        archived: r.of('archiveArtifacts').collectMany { it.artifacts.split(',') as List },
        junit   : r.of('junit')*.testResults,
        sarif   : r.of('recordIssues').collectMany { it.tools*.pattern },
        error   : message,
    ])
    System.exit(0)
}

// What imagepipe-scan --json names: the record and every report, as the paths it was given
// (absolute here, under the workspace).
def scanJson = [
    passed : false,
    record : '/ws/out/global/debian-12/1.4.0/imagepipe-record.json',
    reports: ['sarif', 'junit', 'json', 'markdown', 'cyclonedx', 'spdx'].collect { k ->
        [kind: k, path: "/ws/out/global/debian-12/1.4.0/scan.${k}".toString(), sha256: '00' * 32]
    },
]
def archivedOf = { Run r -> r.of('archiveArtifacts').collectMany { it.artifacts.split(',') as List } }
def wrote = (['out/global/debian-12/1.4.0/imagepipe-record.json'] +
    ['sarif', 'junit', 'json', 'markdown', 'cyclonedx', 'spdx'].collect { "out/global/debian-12/1.4.0/scan.${it}".toString() })

check('scan: passes arguments as IMAGEPIPE_* variables, archives and publishes what it wrote') {
    def (r, err, result) = run('imagepipeScan', [tag: 'global/debian-12/v1.4.0', osvDb: '/srv/osv'], 0, scanJson + [passed: true])
    expect(err == null, "no error: ${err}")
    def sh = r.of('sh')[0]
    expect(sh.script.startsWith("imagepipe-scan --json > '"), sh.script)
    expect(sh.env.containsAll(['IMAGEPIPE_TAG=global/debian-12/v1.4.0', 'IMAGEPIPE_OSV_DB=/srv/osv', 'IMAGEPIPE_PROGRESS=lines']), "${sh.env}")
    expect(archivedOf(r).sort() == wrote.sort(), "archived ${archivedOf(r)}")
    expect(r.of('junit')*.testResults == ['out/global/debian-12/1.4.0/scan.junit'], "${r.of('junit')}")
    def ri = r.of('recordIssues')
    expect(ri.size() == 1 && ri[0].tools[0].tool == 'sarif' && ri[0].tools[0].pattern == 'out/global/debian-12/1.4.0/scan.sarif', "${ri}")
    expect(result.passed == true, "returns the JSON")
    expect(!r.of('unstable') && !r.of('error'), "${r.calls}")
}

check('scan: a failed gate (exit 1) stops the pipeline by default, after publishing the findings') {
    def (r, err, result) = run('imagepipeScan', [tag: 'global/debian-12/v1.4.0'], 1, scanJson)
    expect(err != null && err.contains('exit code 1'), "error: ${err}")
    expect(archivedOf(r).sort() == wrote.sort(), "archived before failing: ${archivedOf(r)}")
    expect(r.of('junit').size() == 1 && r.of('recordIssues').size() == 1, "published before failing")
    expect(r.calls.findIndexOf { it.step == 'error' } > r.calls.findIndexOf { it.step == 'recordIssues' }, "order")
}

check('scan: onCheckFailure unstable marks the build UNSTABLE and returns the result') {
    def (r, err, result) = run('imagepipeScan', [tag: 't/v1.0.0', onCheckFailure: 'unstable'], 1, scanJson)
    expect(err == null, "no error: ${err}")
    expect(r.of('unstable').size() == 1 && r.of('unstable')[0].message.contains('exit code 1'), "${r.of('unstable')}")
    expect(result.passed == false, "returns the JSON")
}

check('exit code 2 fails the build whatever onCheckFailure says') {
    def (r, err, result) = run('imagepipePublish', [tag: 't/v1.0.0', onCheckFailure: 'unstable'], 2, null)
    expect(err != null && err.contains('exit code 2'), "error: ${err}")
    expect(!r.of('unstable') && !r.of('archiveArtifacts'), "${r.calls}")
}

check('credentials are bound with withCredentials around the step, under the configured names') {
    def (r, err, result) = run('imagepipeImport', [tag: 't/v1.0.0', credentials: [ART_EAST_TOKEN: 'art-east'], usernamePasswords: [VC_EAST: 'vc-east']], 0, [:])
    expect(err == null, "no error: ${err}")
    def creds = r.of('sh')[0].credentials
    expect(creds.contains([kind: 'string', credentialsId: 'art-east', variable: 'ART_EAST_TOKEN']), "${creds}")
    expect(creds.contains([kind: 'usernamePassword', credentialsId: 'vc-east', usernameVariable: 'VC_EAST_USER', passwordVariable: 'VC_EAST_PASSWORD']), "${creds}")
    expect(!r.of('sh')[0].env.any { it.contains('art-east') || it.contains('vc-east') }, "credentials IDs are not variables")
    expect(!r.of('archiveArtifacts'), "nothing named, nothing archived")
}

check('build: archives the record it wrote') {
    def (r, err, result) = run('imagepipeBuild', [tag: 'g/v1.0.0'], 0, [record: '/ws/out/g/1.0.0/imagepipe-record.json', image: 'g', version: '1.0.0'])
    expect(err == null, "no error: ${err}")
    expect(archivedOf(r) == ['out/g/1.0.0/imagepipe-record.json'], "${archivedOf(r)}")
    expect(!r.of('junit') && !r.of('recordIssues'), "no reports")
}

check('archive: false archives and publishes nothing') {
    def (r, err, result) = run('imagepipeScan', [tag: 't/v1.0.0', archive: false], 0, scanJson)
    expect(err == null && !r.of('archiveArtifacts') && !r.of('junit') && !r.of('recordIssues'), "${r.calls}")
}

vars.listFiles().findAll { it.name.endsWith('.groovy') && it.name != 'imagepipeStep.groovy' }.sort().each { f ->
    def step = f.name - '.groovy'
    check("${step}: unknown and null arguments are refused before anything runs; help text exists") {
        def (r, err, result) = run(step, [tga: 'x'], 0, [:])
        expect(err != null && err.contains('unknown argument(s) tga'), "error: ${err}")
        expect(!r.of('sh'), "ran ${r.of('sh')}")
        (r, err, result) = run(step, [config: null], 0, [:])
        expect(err != null && err.contains('config are null'), "error: ${err}")
        expect(!r.of('sh'), "ran ${r.of('sh')}")
        (r, err, result) = run(step, [onCheckFailure: 'ignore'], 0, [:])
        expect(err != null && err.contains("onCheckFailure is 'ignore'"), "error: ${err}")
        expect(new File(vars, "${step}.txt").text.trim(), "${step}.txt")
    }
}

// The same options in Jenkins as in GitHub Actions: the variables a step maps its arguments to
// are those its action maps inputs to (less the action's own: the JSON switch, and the token,
// which Jenkins binds as a credential).
vars.listFiles().findAll { it.name.endsWith('.groovy') && it.name != 'imagepipeStep.groovy' }.sort().each { f ->
    def step = f.name - '.groovy'
    def dir = (step - 'imagepipe').replaceAll(/([a-z])([A-Z])/, '$1-$2').toLowerCase()
    check("${step}: takes every option steps/${dir}/action.yml offers, and no other") {
        def action = new File(vars.parentFile.parentFile, "steps/${dir}/action.yml").text
        def runStep = action.substring(action.indexOf('id: run'))
        def fromAction = (runStep =~ /(IMAGEPIPE_[A-Z_]+): \$\{\{ inputs\./).collect { it[1] } as Set
        fromAction -= ['IMAGEPIPE_JSON', 'IMAGEPIPE_GITHUB_TOKEN']
        def fromJenkins = (f.text =~ /'(IMAGEPIPE_[A-Z_]+)'/).collect { it[1] } as Set
        expect(fromAction == fromJenkins, "only in the action: ${(fromAction - fromJenkins).sort()}; only in Jenkins: ${(fromJenkins - fromAction).sort()}")
    }
}

// The example Jenkinsfile is Groovy the pipeline can load, and calls the library's steps with
// arguments they take.
check('examples/workflows/Jenkinsfile parses, and its imagepipe steps take its arguments') {
    def file = new File(vars.parentFile.parentFile, 'examples/workflows/Jenkinsfile')
    // @Library is resolved by Jenkins, not by plain Groovy: the line is left out (kept blank,
    // so that line numbers stay).
    new GroovyShell().parse(file.text.replaceFirst(/(?m)^@Library\(.*\) _$/, ''), 'Jenkinsfile')
    def known = [:]
    vars.listFiles().findAll { it.name.endsWith('.groovy') && it.name != 'imagepipeStep.groovy' }.each { f ->
        known[f.name - '.groovy'] = ((f.text =~ /(?m)^\s+(\w+)\s*:\s*'IMAGEPIPE_/).collect { it[1] } +
            ['credentials', 'usernamePasswords', 'onCheckFailure', 'archive']) as Set
    }
    def calls = (file.text =~ /(imagepipe[A-Z]\w+)\(([^)]*)\)/).collect { [it[1], it[2]] }
    expect(calls.size() >= 7, "${calls.size()} calls")
    calls.each { step, argText ->
        expect(known.containsKey(step), "${step} is not a library step")
        def args = (argText =~ /(?:^|,\s*)(\w+):/).collect { it[1] }
        expect(known[step].containsAll(args), "${step}(${args}) takes ${known[step].sort()}")
    }
}

if (failures) {
    println "${failures.size()} failed: ${failures.join('; ')}"
    System.exit(1)
}
println 'all passed'
