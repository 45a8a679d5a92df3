# The vendor layer: an ext4 disk image made from ./rootfs with mke2fs -d.

variable "imagepipe_output_dir" {
  type = string
}

variable "imagepipe_manifest" {
  type = string
}

variable "imagepipe_version" {
  type = string
}

locals {
  disk = "${var.imagepipe_output_dir}/vendor-debian-12.raw"
}

source "file" "disk" {
  content = "placeholder, replaced by mke2fs"
  target  = local.disk
}

build {
  sources = ["source.file.disk"]

  provisioner "shell-local" {
    inline = [
      "export PATH=\"$PATH:/usr/sbin:/sbin\"",
      "mke2fs -F -q -t ext4 -L root -d '${path.root}/rootfs' '${local.disk}' 32M",
      "printf 'VENDOR_VERSION=%s\\n' '${var.imagepipe_version}' > '${var.imagepipe_output_dir}/.release'",
      "debugfs -w -R 'write ${var.imagepipe_output_dir}/.release /etc/vendor-release' '${local.disk}'",
      "rm '${var.imagepipe_output_dir}/.release'",
    ]
  }

  post-processor "manifest" {
    output = var.imagepipe_manifest
  }
}
