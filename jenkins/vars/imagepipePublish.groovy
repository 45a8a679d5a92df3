// imagepipePublish(): runs imagepipe-publish. Not implemented in this release: the binary exits 2.
def call(Map args = [:]) {
    return imagepipeStep('imagepipe-publish', args, [config: 'IMAGEPIPE_CONFIG'])
}
