// imagepipeScan(): runs imagepipe-scan. Not implemented in this release: the binary exits 2.
def call(Map args = [:]) {
    return imagepipeStep('imagepipe-scan', args, [config: 'IMAGEPIPE_CONFIG'])
}
