# The vendor layer of the Windows side: Windows Server 2022 Datacenter as Windows Setup lays it
# out on a UEFI machine, at the November 2024 cumulative update (10.0.20348.2849). Packer 1.6.6
# cannot install Windows here (no installation media, licence or KVM), so, as the Debian vendor
# layer does with mmdebstrap, ./make-disk writes the disk on the build host: GPT with EFI, MSR,
# the NTFS OS volume (registry hives made by hivex from the .reg text beside it) and WinRE.
# The sites' content libraries import OVAs: the disk is packaged as one too, with a Windows
# Server 2022 guest type. Nothing boots: there is no Windows to boot.

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
  disk = "${var.imagepipe_output_dir}/vendor-windows-2022.qcow2"
  ova  = "${var.imagepipe_output_dir}/vendor-windows-2022.ova"
}

# The file builder only gives the build a target: make-disk replaces it with the disk.
source "file" "disk" {
  content = "placeholder, replaced by make-disk"
  target  = local.disk
}

build {
  sources = ["source.file.disk"]

  provisioner "shell-local" {
    inline = ["'${path.root}/make-disk' '${local.disk}' '${var.imagepipe_version}'"]
  }

  post-processors {
    post-processor "shell-local" {
      inline = ["'${path.root}/../../../scripts/make-ova' '${local.disk}' vendor-windows-2022 '${var.imagepipe_output_dir}' windows-server-2022"]
    }
    post-processor "artifice" {
      files = [local.disk, local.ova]
    }
    post-processor "manifest" {
      output = var.imagepipe_manifest
    }
  }
}
