# The vendor layer: Debian 12 as Debian ships it (minbase, a kernel, systemd with D-Bus,
# openssh-server and DHCP), made into a bootable disk by ./make-disk on the build host. Nothing
# boots here: the layers above boot it.

variable "imagepipe_output_dir" {
  type = string
}

variable "imagepipe_manifest" {
  type = string
}

variable "imagepipe_version" {
  type = string
}

# Both are set by scripts/local-pipeline through the environment (PKR_VAR_build_key,
# PKR_VAR_cache_dir).
variable "build_key" {
  type        = string
  description = "Private SSH key the layers above log in with; its .pub goes into the disk."
}

variable "cache_dir" {
  type        = string
  description = "Where the mmdebstrap tree is cached between runs."
}

locals {
  disk = "${var.imagepipe_output_dir}/vendor-debian-12.qcow2"
}

# The file builder only gives the build a target: make-disk replaces it with the disk.
source "file" "disk" {
  content = "placeholder, replaced by make-disk"
  target  = local.disk
}

build {
  sources = ["source.file.disk"]

  provisioner "shell-local" {
    inline = [
      "'${path.root}/make-disk' '${local.disk}' '${var.imagepipe_version}' '${var.build_key}.pub' '${var.cache_dir}'",
    ]
  }

  post-processor "manifest" {
    output = var.imagepipe_manifest
  }
}
