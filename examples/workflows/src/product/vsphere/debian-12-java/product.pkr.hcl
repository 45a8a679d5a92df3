# The product layer: the Java runtime every Java service runs on, on the hardened global image.
# Built on its parent's published version: on vSphere by cloning the parent's template
# (vsphere-clone), with qemu from the parent's qcow2 (the qemu artifact imagepipe resolved from
# the store). vCenter credentials come from the environment (PKR_VAR_vsphere_username/_password).

variable "imagepipe_output_dir" { type = string }
variable "imagepipe_manifest" { type = string }
variable "imagepipe_image" { type = string }
variable "imagepipe_version" { type = string }
variable "imagepipe_parent_image" { type = string }
variable "imagepipe_parent_version" { type = string }
variable "imagepipe_parent_artifacts" { type = map(string) }

variable "vsphere_server" {
  type    = string
  default = "vc-build.corp.example"
}
variable "vsphere_username" {
  type      = string
  default   = ""
  sensitive = true
}
variable "vsphere_password" {
  type      = string
  default   = ""
  sensitive = true
}
variable "vsphere_datacenter" {
  type    = string
  default = "dc-build"
}
variable "vsphere_cluster" {
  type    = string
  default = "build"
}
variable "vsphere_datastore" {
  type    = string
  default = "build-ds"
}
variable "vsphere_network" {
  type    = string
  default = "build-net"
}
locals {
  name   = "${replace(var.imagepipe_image, "/", "-")}-${var.imagepipe_version}"
  parent = "${replace(var.imagepipe_parent_image, "/", "-")}-${var.imagepipe_parent_version}"
}

source "vsphere-clone" "vsphere" {
  vcenter_server      = var.vsphere_server
  username            = var.vsphere_username
  password            = var.vsphere_password
  datacenter          = var.vsphere_datacenter
  cluster             = var.vsphere_cluster
  datastore           = var.vsphere_datastore
  template            = local.parent
  vm_name             = local.name
  ssh_username        = "root"
  ssh_password        = "packer"
  convert_to_template = true
  export {
    output_directory = "${var.imagepipe_output_dir}/ovf"
    force            = true
    manifest         = "sha256"
  }
}

source "qemu" "qemu" {
  disk_image       = true
  iso_url          = lookup(var.imagepipe_parent_artifacts, "qemu", "")
  # imagepipe-build has checked the parent's artifacts against their digests in the store
  # before Packer starts; there is no second checksum to give.
  iso_checksum     = "none"
  output_directory = "${var.imagepipe_output_dir}/qemu"
  vm_name          = "${local.name}.qcow2"
  format           = "qcow2"
  headless         = true
  ssh_username     = "root"
  ssh_password     = "packer"
  ssh_timeout      = "10m"
  shutdown_command = "systemctl poweroff"
}

build {
  sources = ["source.vsphere-clone.vsphere", "source.qemu.qemu"]

  provisioner "shell" {
    inline = [
      "apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless",
      "java -version",
      "printf 'PRODUCT_IMAGE=%s\\nPRODUCT_VERSION=%s\\n' '${var.imagepipe_image}' '${var.imagepipe_version}' > /etc/product-release",
    ]
  }

  post-processor "manifest" {
    output = var.imagepipe_manifest
  }
}
