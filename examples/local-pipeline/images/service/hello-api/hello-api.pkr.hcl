# The service layer: hello-api and its systemd unit on the Python product image. It is the image
# the sites import, so it also leaves the build account behind and is packaged as an OVA.

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
  description = "The product layer's qcow2 disk, resolved by imagepipe from the store."
}

variable "imagepipe_parent_version" {
  type = string
}

# Set by scripts/local-pipeline through the environment (PKR_VAR_build_key).
variable "build_key" {
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
  disk = "${var.imagepipe_output_dir}/qemu/service-hello-api.qcow2"
  ova  = "${var.imagepipe_output_dir}/service-hello-api.ova"
}

source "qemu" "debian" {
  iso_url          = var.imagepipe_parent_artifact
  iso_checksum     = "none"
  disk_image       = true
  skip_resize_disk = true
  format           = "qcow2"
  disk_compression = true
  output_directory = "${var.imagepipe_output_dir}/qemu"
  vm_name          = "service-hello-api.qcow2"

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
  # The last thing this build does in the guest: the build account goes (sudo has read its
  # rules by then), so the image the sites run has no login that a build key opens.
  shutdown_command = "sudo sh -c 'rm -f /etc/sudoers.d/packer; userdel --force --remove packer; systemctl poweroff'"
  shutdown_timeout = "2m"
}

build {
  sources = ["source.qemu.debian"]

  provisioner "file" {
    sources     = ["${path.root}/files/hello-api.py", "${path.root}/files/hello-api.service"]
    destination = "/tmp/"
  }

  provisioner "shell" {
    execute_command = "sudo sh -c '{{ .Vars }} {{ .Path }}'"
    inline = [
      "set -e",
      "install -D -m 0755 -o root -g root /tmp/hello-api.py /opt/hello-api/hello-api.py",
      "install -m 0644 -o root -g root /tmp/hello-api.service /etc/systemd/system/hello-api.service",
      "systemctl daemon-reload",
      "systemctl enable --quiet --now hello-api.service",
      "printf 'SERVICE_VERSION=%s\\nBUILT_ON_PRODUCT=%s\\n' '${var.imagepipe_version}' '${var.imagepipe_parent_version}' > /etc/service-release",
      # It answers before the image is sealed: a unit that cannot start fails the build here.
      "for i in $(seq 1 30); do python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:8080/\").read().decode())' 2>/dev/null && exit 0; sleep 1; done; systemctl status --no-pager hello-api; exit 1",
    ]
  }

  provisioner "shell" {
    execute_command = "sudo sh -c '{{ .Vars }} {{ .Path }}'"
    scripts         = ["${path.root}/../../../scripts/seal"]
  }

  # The sites' content libraries import OVAs: the disk as a stream-optimized VMDK with its
  # descriptor and manifest. Both files are this build's artifacts (artifice hands them on).
  post-processors {
    post-processor "shell-local" {
      inline = ["'${path.root}/../../../scripts/make-ova' '${local.disk}' service-hello-api '${var.imagepipe_output_dir}'"]
    }
    post-processor "artifice" {
      files = [local.disk, local.ova]
    }
    post-processor "manifest" {
      output = var.imagepipe_manifest
    }
  }
}
