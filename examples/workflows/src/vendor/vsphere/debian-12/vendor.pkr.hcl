# The vendor layer: Debian 12 installed from the netinst ISO with a preseed file, as the vendor
# ships it. Built on vSphere (vsphere-iso: a template, exported as OVF and put into the
# build site's content library) and, for tests and laptops, with qemu (a qcow2 disk).
# vCenter credentials come from the environment (PKR_VAR_vsphere_username/_password).

variable "imagepipe_output_dir" { type = string }
variable "imagepipe_manifest" { type = string }
variable "imagepipe_version" { type = string }

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
# vSphere boots the installer from an ISO on a datastore; qemu downloads it (from a mirror), and
# checks it against the sha256 given (sha256:…, from the mirror's SHA256SUMS), set by CI.
variable "iso_datastore_path" {
  type    = string
  default = "[build-ds] iso/debian-12.9.0-amd64-netinst.iso"
}
variable "iso_url" {
  type    = string
  default = "https://mirror.corp.example/debian-cd/12.9.0/amd64/iso-cd/debian-12.9.0-amd64-netinst.iso"
}
variable "iso_checksum" {
  type = string
}

locals {
  name         = "vendor-debian-12-${var.imagepipe_version}"
  boot_command = ["<esc><wait>auto preseed/url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg<enter>"]
}

source "vsphere-iso" "vsphere" {
  vcenter_server       = var.vsphere_server
  username             = var.vsphere_username
  password             = var.vsphere_password
  datacenter           = var.vsphere_datacenter
  cluster              = var.vsphere_cluster
  datastore            = var.vsphere_datastore
  vm_name              = local.name
  guest_os_type        = "debian11_64Guest"
  CPUs                 = 2
  RAM                  = 2048
  disk_controller_type = ["pvscsi"]
  storage {
    disk_size             = 20480
    disk_thin_provisioned = true
  }
  network_adapters {
    network      = var.vsphere_network
    network_card = "vmxnet3"
  }
  iso_paths           = [var.iso_datastore_path]
  http_directory      = "${path.root}/http"
  boot_command        = local.boot_command
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
  iso_url          = var.iso_url
  iso_checksum     = var.iso_checksum
  output_directory = "${var.imagepipe_output_dir}/qemu"
  vm_name          = "${local.name}.qcow2"
  format           = "qcow2"
  disk_size        = "20G"
  headless         = true
  http_directory   = "${path.root}/http"
  boot_command     = local.boot_command
  ssh_username     = "root"
  ssh_password     = "packer"
  ssh_timeout      = "30m"
  shutdown_command = "systemctl poweroff"
}

build {
  sources = ["source.vsphere-iso.vsphere", "source.qemu.qemu"]

  post-processor "manifest" {
    output = var.imagepipe_manifest
  }
}
