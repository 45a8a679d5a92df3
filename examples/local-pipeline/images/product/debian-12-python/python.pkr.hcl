# A product layer: Python 3 from Debian's packages on the hardened global image. The guest has
# no mirror: the .deb files are fetched on the build host (fetch-debs, for exactly what the
# guest's dpkg database lacks) and installed in the booted VM with dpkg -i.

variable "imagepipe_output_dir" {
  type = string
}

variable "imagepipe_manifest" {
  type = string
}

variable "imagepipe_version" {
  type = string
}

variable "imagepipe_parent_artifact" {
  type        = string
  description = "The global layer's qcow2 disk, resolved by imagepipe from the store."
}

variable "imagepipe_parent_version" {
  type = string
}

# Set by scripts/local-pipeline through the environment (PKR_VAR_build_key, PKR_VAR_cache_dir).
variable "build_key" {
  type = string
}

variable "cache_dir" {
  type = string
}

variable "ssh_port_min" {
  type    = number
  default = 2222
}

variable "ssh_port_max" {
  type    = number
  default = 4444
}

locals {
  debs = "${var.imagepipe_output_dir}/debs"
}

source "qemu" "debian" {
  iso_url          = var.imagepipe_parent_artifact
  iso_checksum     = "none"
  disk_image       = true
  skip_resize_disk = true
  format           = "qcow2"
  disk_compression = true
  output_directory = "${var.imagepipe_output_dir}/qemu"
  vm_name          = "product-debian-12-python.qcow2"

  accelerator    = "tcg"
  headless       = true
  disable_vnc    = true
  cpus           = 2
  memory         = 1024
  disk_interface = "virtio"
  net_device     = "virtio-net"
  qemuargs       = [["-serial", "file:${var.imagepipe_output_dir}/console.log"]]

  communicator         = "ssh"
  ssh_username         = "packer"
  ssh_private_key_file = var.build_key
  ssh_timeout          = "5m"
  host_port_min        = var.ssh_port_min
  host_port_max        = var.ssh_port_max
  shutdown_command     = "sudo systemctl poweroff"
  shutdown_timeout     = "2m"
}

build {
  sources = ["source.qemu.debian"]

  # The guest's package database, for apt on the host to resolve against.
  provisioner "file" {
    direction   = "download"
    source      = "/var/lib/dpkg/status"
    destination = "${var.imagepipe_output_dir}/guest-dpkg-status"
  }

  provisioner "shell-local" {
    inline = [
      "'${path.root}/fetch-debs' '${var.imagepipe_output_dir}/guest-dpkg-status' '${local.debs}' '${var.cache_dir}' python3",
    ]
  }

  # Without a trailing slash the directory itself is uploaded: /tmp/debs.
  provisioner "file" {
    source      = local.debs
    destination = "/tmp"
    generated   = true
  }

  provisioner "shell" {
    execute_command = "sudo sh -c '{{ .Vars }} {{ .Path }}'"
    inline = [
      "set -e",
      # dpkg, in the order apt planned on the host (fetch-debs).
      "while read -r action name; do case $action in unpack) dpkg --unpack /tmp/debs/\"$name\"_*.deb ;; configure) dpkg --configure \"$name\" ;; esac; done < /tmp/debs/plan",
      "dpkg --audit",
      "python3 -c 'import sys, ssl, sqlite3, json; print(sys.version)'",
      "printf 'PRODUCT_VERSION=%s\\nBUILT_ON_GLOBAL=%s\\n' '${var.imagepipe_version}' '${var.imagepipe_parent_version}' > /etc/product-release",
    ]
  }

  # The packages are in the image now; only the disk is this layer's artifact.
  provisioner "shell-local" {
    inline = ["rm -rf '${local.debs}' '${var.imagepipe_output_dir}/guest-dpkg-status'"]
  }

  provisioner "shell" {
    execute_command = "sudo sh -c '{{ .Vars }} {{ .Path }}'"
    scripts         = ["${path.root}/../../../scripts/seal"]
  }

  post-processor "manifest" {
    output = var.imagepipe_manifest
  }
}
