# The vendor template, cloned, updated over SSH, and exported as an OVF.

variable "imagepipe_output_dir" {
  type = string
}

variable "imagepipe_manifest" {
  type = string
}

variable "imagepipe_version" {
  type = string
}

variable "vcenter_server" {
  type = string
}

variable "vsphere_username" {
  type = string
}

variable "vsphere_password" {
  type      = string
  sensitive = true
  # From the environment: PKR_VAR_vsphere_password.
}

variable "ssh_password" {
  type      = string
  sensitive = true
  # From the environment: PKR_VAR_ssh_password.
}

variable "datacenter" {
  type = string
}

variable "cluster" {
  type = string
}

variable "datastore" {
  type = string
}

variable "folder" {
  type = string
}

variable "vendor_template" {
  type = string
}

source "vsphere-clone" "debian-12" {
  vcenter_server      = var.vcenter_server
  username            = var.vsphere_username
  password            = var.vsphere_password
  insecure_connection = false
  datacenter          = var.datacenter
  cluster             = var.cluster
  datastore           = var.datastore
  folder              = var.folder
  template            = var.vendor_template
  vm_name             = "debian-12-${var.imagepipe_version}"

  communicator = "ssh"
  ssh_username = "packer"
  ssh_password = var.ssh_password

  # The export is the artifact: the VM itself is removed at the end of the build.
  convert_to_template = false

  export {
    # A directory of its own: the plugin's artifact lists every file in the export directory,
    # so it must hold nothing but the export (not imagepipe's var file, manifest or record).
    # The default format is a loose OVF (descriptor, disk, manifest): imagepipe records each
    # file by role, scans the disk, and imports the descriptor with the files it names.
    output_directory = "${var.imagepipe_output_dir}/export"
    name             = "debian-12"
    manifest         = "sha256"
  }
}

build {
  sources = ["source.vsphere-clone.debian-12"]

  provisioner "shell" {
    execute_command = "echo '${var.ssh_password}' | sudo -S sh -eux '{{ .Path }}'"
    inline = [
      "apt-get update",
      "DEBIAN_FRONTEND=noninteractive apt-get -y upgrade",
      "printf 'IMAGE_VERSION=%s\\n' '${var.imagepipe_version}' > /etc/image-release",
      "apt-get clean",
    ]
  }

  post-processor "manifest" {
    output = var.imagepipe_manifest
  }
}
