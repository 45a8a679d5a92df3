# Packer 1.10 and later bundle no vSphere builder: it is a plugin. imagepipe runs `packer init`
# because this block is here. Without network access, install it from its binary instead:
#   packer plugins install --path ./packer-plugin-vsphere github.com/vmware/vsphere
# into the plugin directory (PACKER_PLUGIN_PATH, one directory since Packer 1.11).
packer {
  required_version = ">= 1.10.0"
  required_plugins {
    vsphere = {
      source  = "github.com/vmware/vsphere"
      version = ">= 1.4.0"
    }
  }
}
