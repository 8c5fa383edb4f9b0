"""The `palmares` subcommands, imported only when used. Add a new command here (one line)."""

from __future__ import annotations

# subcommand name -> "module:attribute" holding the click command or group
COMMANDS = {
    "demo": "palmares_desktop.cli.demo_cmd:demo",
    "scan": "palmares_desktop.cli.scan_cmd:scan",
    "suv": "palmares_desktop.cli.suv_cmd:suv",
    "import": "palmares_desktop.cli.import_cmd:import_",
    "segmentation": "palmares_desktop.cli.segmentation_cmd:segmentation",
    "radiomics": "palmares_desktop.cli.radiomics_cmd:radiomics",
    "slide": "palmares_desktop.cli.slide_cmd:slide",
    "store": "palmares_desktop.cli.store_cmd:store",
    "study": "palmares_desktop.cli.study_cmd:study",
    "pet": "palmares_desktop.cli.pet_cmd:pet",
    "ct": "palmares_desktop.cli.ct_cmd:ct",
    "keys": "palmares_desktop.cli.keys_cmd:keys",
    "export": "palmares_desktop.cli.exchange_cmd:export",
    "verify": "palmares_desktop.cli.exchange_cmd:verify",
    "merge": "palmares_desktop.cli.exchange_cmd:merge",
    "table": "palmares_desktop.cli.exchange_cmd:table",
    "centre": "palmares_desktop.cli.centre_cmd:centre",
    "plugins": "palmares_desktop.cli.plugins_cmd:plugins",
}
