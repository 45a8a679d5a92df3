// imagepipeImport(): runs imagepipe-import. Not implemented in this release: the binary exits 2.
def call(Map args = [:]) {
    return imagepipeStep('imagepipe-import', args, [config: 'IMAGEPIPE_CONFIG'])
}
