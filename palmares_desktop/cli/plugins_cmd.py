"""`palmares plugins`: what is installed, allowed by the site, loaded, and why not; allow/disallow;
compute plugin feature families.

    palmares plugins [--store PATH] [--json]
    palmares plugins allow NAME --store PATH [--reader NAME]
    palmares plugins disallow NAME --store PATH [--reader NAME]
    palmares plugins features --store PATH [--family PLUGIN/NAME] [--all-versions] [--json]
    palmares plugins run TOOL --store PATH --subject CODE --modality ct|pet [--param NAME=VALUE ...]
                         [--at X,Y,Z] [--lesion NAME] [--lesion-site SITE] [--reader NAME] [--json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from palmares_desktop.cli import exit_codes
from palmares_desktop.cli import options as shared
from palmares_desktop.cli.reader_option import open_store_as_reader, reader_option

store_option = click.option(
    "--store",
    "store_path",
    type=click.Path(file_okay=False, path_type=Path),
    help="The study store whose site setting lists the allowed plugins.",
)


def _status_lines(statuses, allowed_known: bool) -> list[str]:
    if not statuses:
        return ["No workstation plugin is installed (entry-point group palmares_desktop.plugins)."]
    lines = []
    for s in statuses:
        d = s.to_dict()
        allowed = ("allowed" if d["allowed"] else "not allowed") if allowed_known else "allowed: unknown"
        head = f"{d['name']} {d['version']} ({d['distribution']}): {allowed}, "
        head += "loaded" if d["loaded"] else f"not loaded: {d['reason']}"
        lines.append(head)
        for hook, names in d["contributes"].items():
            lines.append(f"    {hook.replace('palmares_', '').replace('_', ' ')}: {', '.join(names)}")
    return lines


@click.group(invoke_without_command=True)
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
def plugins(ctx: click.Context, store_path: Path | None, as_json: bool) -> None:
    """List the installed plugins: allowed by this site's store, loaded, and why not."""
    if ctx.invoked_subcommand is not None:
        return
    from palmares_desktop.core.plugins.hookspecs import PluginError
    from palmares_desktop.core.plugins.manager import PluginManager, allowed_plugins
    from palmares_desktop.core.store import Store, StoreError

    allowed: list[str] = []
    try:
        if store_path is not None:
            with Store.open(store_path, create=False, read_only=True) as store:
                allowed = allowed_plugins(store)
    except (StoreError, PluginError) as exc:
        raise click.ClickException(str(exc)) from None
    manager = PluginManager(allowed)
    statuses = manager.load()
    installed = {s.plugin.name for s in statuses}
    if as_json:
        click.echo(
            json.dumps(
                {
                    "store": str(store_path) if store_path else None,
                    "allowed": allowed,
                    "allowed_not_installed": sorted(set(allowed) - installed),
                    "plugins": [s.to_dict() for s in statuses],
                },
                indent=2,
            )
        )
        return
    for line in _status_lines(statuses, store_path is not None):
        click.echo(line)
    if store_path is None:
        click.echo("No --store given: no plugin is allowed, so none was loaded.")
    for name in sorted(set(allowed) - installed):
        click.echo(f"{name}: allowed by the site but not installed.")


def _change(store_path: Path, name: str, allow: bool, reader_name: str | None) -> None:
    from palmares_desktop.cli.reader_option import choose_reader
    from palmares_desktop.core.plugins.hookspecs import PluginError
    from palmares_desktop.core.plugins.manager import allow_plugin, installed_plugins
    from palmares_desktop.core.store import Store, StoreError
    from palmares_desktop.core.store.records import store_site

    try:
        with Store.open(store_path, create=False) as store:
            choose_reader(store, reader_name, store_site(store))
            names = allow_plugin(store, name, allow)
    except (StoreError, PluginError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{name} is {'now allowed' if allow else 'no longer allowed'} at this site.")
    if allow and name not in {p.name for p, _ in installed_plugins()}:
        click.echo(f"Note: no installed plugin is named {name} (yet).", err=True)
    click.echo(f"Allowed: {', '.join(names) or 'none'}")


@plugins.command("allow")
@click.argument("name")
@click.option("--store", "store_path", required=True, type=click.Path(file_okay=False, path_type=Path))
@reader_option
def allow(name: str, store_path: Path, reader_name: str | None) -> None:
    """Allow the plugin NAME to run with this store (the site's list)."""
    _change(store_path, name, True, reader_name)


@plugins.command("disallow")
@click.argument("name")
@click.option("--store", "store_path", required=True, type=click.Path(file_okay=False, path_type=Path))
@reader_option
def disallow(name: str, store_path: Path, reader_name: str | None) -> None:
    """Stop the plugin NAME from running with this store."""
    _change(store_path, name, False, reader_name)


@plugins.command("features")
@click.option("--store", "store_path", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--family", default=None, help="Only this plugin feature family (PLUGIN/NAME).")
@click.option("--all-versions", is_flag=True, help="Every final version, not only each chain's latest.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored sets as JSON.")
@reader_option
def features(
    store_path: Path, family: str | None, all_versions: bool, as_json: bool, reader_name: str | None
) -> None:
    """Compute the allowed plugins' feature families for every final segmentation (stored in the
    store's feature sets with the plugin's name and version)."""
    from palmares_desktop.cli.reader_option import choose_reader
    from palmares_desktop.core.plugins.features import compute_all_plugin_features
    from palmares_desktop.core.plugins.hookspecs import PluginError
    from palmares_desktop.core.plugins.manager import PluginManager
    from palmares_desktop.core.store import Store, StoreError, records
    from palmares_desktop.core.store.records import store_site

    try:
        with Store.open(store_path, create=False) as store:
            choose_reader(store, reader_name, store_site(store), say=not as_json)
            manager = PluginManager.for_store(store)
            if not manager.feature_extractors():
                raise click.ClickException(
                    "No allowed plugin offers a feature family: see `palmares plugins --store ...`."
                )
            rows = compute_all_plugin_features(store, manager, latest_only=not all_versions, family=family)
            sets = [records.as_feature_set(r) for r in rows]
    except (StoreError, PluginError) as exc:
        raise click.ClickException(str(exc)) from None
    failed = [s for s in sets if s.status != "ok"]
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "segmentation_id": s.segmentation_id,
                        "family": s.params_name,
                        "status": s.status,
                        "error": s.error,
                        "features": s.features,
                        "plugin": s.provenance.get("plugin"),
                        "plugin_version": s.provenance.get("plugin_version"),
                    }
                    for s in sets
                ],
                indent=2,
            )
        )
    else:
        for s in sets:
            state = f"{len(s.features)} features" if s.status == "ok" else f"failed: {s.error}"
            click.echo(f"{s.segmentation_id} {s.params_name}: {state}")
    sys.exit(exit_codes.for_outcome(len(sets) > len(failed), bool(failed)))


def _named_values(ctx, param, value) -> dict[str, str]:
    """--param NAME=VALUE (repeated) -> {NAME: VALUE}; core's make_parameters converts and checks them."""
    values: dict[str, str] = {}
    for item in value or ():
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not NAME=VALUE (e.g. --param level=400).")
        if name.strip() in values:
            raise click.BadParameter(f"The parameter {name.strip()} is given twice.")
        values[name.strip()] = text.strip()
    return values


@plugins.command("run")
@click.argument("tool")
@shared.store_option
@click.option("--subject", required=True, help="Subject code, e.g. IT99-0001.")
@shared.modality_option("CT", "PT", help="The image the tool runs on: the subject's CT (HU) or PET (SUVbw).")
@click.option(
    "--param",
    "values",
    multiple=True,
    callback=_named_values,
    metavar="NAME=VALUE",
    help="A parameter of the tool (repeat for several); the others keep their defaults.",
)
@click.option(
    "--at", "at", callback=shared.point, default=None, help="The seed, X,Y,Z mm (LPS), if the tool takes one."
)
@shared.new_lesion_options("CT lesion N / PET lesion N")
@reader_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@shared.plain_errors
def run(tool, store_path, subject, modality, values, at, lesion, lesion_site, reader_name, as_json) -> None:
    """Run the allowed plugin segmentation TOOL (PLUGIN/NAME, or NAME when unambiguous) on a subject's
    CT or PET, saved as a lesion's segmentation version with the plugin's name and version."""
    from palmares_desktop.core.plugins.tools import plugin_tool_lesion, plugin_tool_lines

    with open_store_as_reader(store_path, subject, reader_name, as_json) as store:
        _, _, report = plugin_tool_lesion(store, subject, tool, modality, values, at, lesion, lesion_site)
    shared.echo_report(report, plugin_tool_lines(report), as_json)
