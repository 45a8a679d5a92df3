// imagepipeTag(): runs imagepipe-tag. Not implemented in this release: the binary exits 2.
def call(Map args = [:]) {
    return imagepipeStep('imagepipe-tag', args, [config: 'IMAGEPIPE_CONFIG'])
}
