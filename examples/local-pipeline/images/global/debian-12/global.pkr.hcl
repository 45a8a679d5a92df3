# The global layer: the vendor disk booted in QEMU (TCG: no hypervisor acceleration needed) and
# hardened over SSH until the whole scan baseline passes.

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
  description = "The vendor layer's qcow2 disk, resolved by imagepipe from the store."
}

variable "imagepipe_parent_version" {
  type = string
}

# Set by scripts/local-pipeline through the environment (PKR_VAR_build_key): the private key
# whose public half the vendor layer put into the packer account.
variable "build_key" {
  type = string
}

# The host ports Packer may forward to the guest's SSH (PKR_VAR_ssh_port_min/max).
variable "ssh_port_min" {
  type    = number
  default = 2222
}

variable "ssh_port_max" {
  type    = number
  default = 4444
}

locals {
  out = "${var.imagepipe_output_dir}/qemu"
}

source "qemu" "debian" {
  iso_url          = var.imagepipe_parent_artifact
  iso_checksum     = "none"
  disk_image       = true
  skip_resize_disk = true
  format           = "qcow2"
  disk_compression = true
  output_directory = local.out
  vm_name          = "global-debian-12.qcow2"

  accelerator    = "tcg"
  headless       = true
  disable_vnc    = true
  cpus           = 2
  memory         = 1024
  disk_interface = "virtio"
  net_device     = "virtio-net"
  # The console, for when a boot goes wrong.
  qemuargs = [["-serial", "file:${var.imagepipe_output_dir}/console.log"]]

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

  provisioner "file" {
    sources     = ["${path.root}/files/50-hardening.conf", "${path.root}/files/issue.net"]
    destination = "/tmp/"
  }

  provisioner "shell" {
    execute_command = "sudo sh -c '{{ .Vars }} {{ .Path }}'"
    scripts         = ["${path.root}/harden.sh"]
  }

  provisioner "shell" {
    execute_command = "sudo sh -c '{{ .Vars }} {{ .Path }}'"
    inline = [
      "printf 'GLOBAL_VERSION=%s\\nBUILT_ON_VENDOR=%s\\n' '${var.imagepipe_version}' '${var.imagepipe_parent_version}' > /etc/global-release",
    ]
  }

  provisioner "shell" {
    execute_command = "sudo sh -c '{{ .Vars }} {{ .Path }}'"
    scripts         = ["${path.root}/../../../scripts/seal"]
  }

  post-processor "manifest" {
    output = var.imagepipe_manifest
  }
}
