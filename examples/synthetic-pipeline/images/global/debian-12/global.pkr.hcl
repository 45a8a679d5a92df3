# The global layer: the vendor disk, hardened in place with debugfs.

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
  description = "Path of the vendor layer's disk, resolved by imagepipe from the store."
}

variable "imagepipe_parent_version" {
  type = string
}

locals {
  disk = "${var.imagepipe_output_dir}/global-debian-12.raw"
}

source "file" "disk" {
  source = var.imagepipe_parent_artifact
  target = local.disk
}

build {
  sources = ["source.file.disk"]

  provisioner "shell-local" {
    inline = [
      "export PATH=\"$PATH:/usr/sbin:/sbin\"",
      "debugfs -w -R 'write ${path.root}/files/99-hardening.conf /etc/ssh/sshd_config.d/99-hardening.conf' '${local.disk}'",
      "debugfs -w -R 'rm /usr/bin/telnetd' '${local.disk}'",
      # The telnet server is gone: so is its package (as `apt-get purge telnetd` would leave it).
      "debugfs -R 'cat /var/lib/dpkg/status' '${local.disk}' 2>/dev/null | awk 'BEGIN { RS = \"\"; ORS = \"\\n\\n\" } !/^Package: telnetd\\n/' > '${var.imagepipe_output_dir}/.status'",
      "debugfs -w -R 'rm /var/lib/dpkg/status' '${local.disk}'",
      "debugfs -w -R 'write ${var.imagepipe_output_dir}/.status /var/lib/dpkg/status' '${local.disk}'",
      "rm '${var.imagepipe_output_dir}/.status'",
      # CIS: /etc/shadow is not readable by others.
      "debugfs -w -R 'set_inode_field /etc/shadow mode 0100640' '${local.disk}'",
      "printf 'GLOBAL_VERSION=%s\\nBUILT_ON_VENDOR=%s\\n' '${var.imagepipe_version}' '${var.imagepipe_parent_version}' > '${var.imagepipe_output_dir}/.release'",
      "debugfs -w -R 'write ${var.imagepipe_output_dir}/.release /etc/global-release' '${local.disk}'",
      "rm '${var.imagepipe_output_dir}/.release'",
      # debugfs exits 0 even when a request fails: check that the changes are really there.
      "debugfs -R 'cat /etc/ssh/sshd_config.d/99-hardening.conf' '${local.disk}' | grep -q '^PermitRootLogin no'",
      "if debugfs -R 'stat /usr/bin/telnetd' '${local.disk}' 2>&1 | grep -q 'Inode:'; then echo 'telnetd is still in the image' >&2; exit 1; fi",
      "e2fsck -fn '${local.disk}'",
    ]
  }

  # The content libraries of the sites import OVAs: package the hardened disk as one, and
  # record both files (artifice makes them this build's artifact for the manifest).
  post-processors {
    post-processor "shell-local" {
      inline = ["${path.root}/../../../scripts/make-ova '${local.disk}' global-debian-12 '${var.imagepipe_output_dir}'"]
    }
    post-processor "artifice" {
      files = [local.disk, "${var.imagepipe_output_dir}/global-debian-12.ova"]
    }
    post-processor "manifest" {
      output = var.imagepipe_manifest
    }
  }
}
