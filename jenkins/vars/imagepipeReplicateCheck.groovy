// imagepipeReplicateCheck(): runs imagepipe-replicate-check. Not implemented in this release: the binary exits 2.
def call(Map args = [:]) {
    return imagepipeStep('imagepipe-replicate-check', args, [config: 'IMAGEPIPE_CONFIG'])
}
