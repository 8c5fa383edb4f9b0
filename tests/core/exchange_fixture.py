"""Three sites and a centre built from the demo study, once per test session (tests copy what they write).

- IT99: a copy of the shared demo store (3 subjects, 12 lesions on CT and PET, 3 slides).
- IT01, IT02: the demo's subject 1 and 2 imported through the real import path under their own
  codes, one lesion segmented on PET and CT, its radiomics computed; IT01 also has a slide with
  two annotations.
- The IT01 store is then copied to a second workstation of the site (`IT01b`); both edit the same
  lesion after the first package and export with --since it: the centre must keep both versions.
- The centre has its keys and trusts all three sites; each site trusts the centre.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import shapely

from palmares_desktop.core.exchange import keyring
from palmares_desktop.core.exchange.package import export_package
from palmares_desktop.core.store import Store, records
from palmares_desktop.core.store.slide_objects import add_measurement, save_annotations
from tests.core.demo_fixture import demo_store

_BUILT: dict[str, object] = {}
EDITED_LESION = "liver metastasis"


@dataclass
class World:
    root: Path
    centre: Path  # template: copy it before writing
    sites: dict[str, Path] = field(default_factory=dict)
    packages: dict[str, Path] = field(default_factory=dict)
    manifest: object = None


def _reader(store: Store, site: str) -> None:
    store.use_reader(store.add_reader(f"Dr Reader {site}", "radiologist", site))


def _import_site(source: object, index: int, site: str, target: Path) -> Path:
    from palmares_desktop.core.importer import import_dicom
    from palmares_desktop.core.radiomics.store_features import compute_features_for_segmentation
    from palmares_desktop.core.segmentation.labelmaps import add_segmentation

    subject = source.subjects[index - 1]
    code = f"{site}-0001"
    with Store.open(target) as store:
        _reader(store, site)
        summary = import_dicom(store, source.path(subject.dicom_folder), code)
        assert summary.ok and not summary.errors
        lesion = next(x for x in subject.lesions if x["name"] == EDITED_LESION)
        for modality, labels in (("PT", subject.pet_labels), ("CT", subject.ct_labels)):
            seg = add_segmentation(
                store, code, modality, source.path(labels), label=lesion["label"],
                lesion_name=lesion["name"], organ=lesion["organ"], method="planted (demo phantom)",
            )  # fmt: skip
            compute_features_for_segmentation(store, seg.id)
        if index == 1:
            from palmares_desktop.core.slides.registry import register_slide

            stored = store.subject_by_code(code)
            slide = register_slide(store, stored.id, source.path(subject.slide), stain="H&E")
            objects = [
                {"kind": "annotation", "classification": "Tumor", "name": "tumour area 1",
                 "geometry": shapely.Polygon([(0, 0), (100, 0), (100, 100)])},
                {"kind": "annotation", "classification": "Stroma", "name": "stroma 1",
                 "geometry": shapely.Polygon([(200, 200), (300, 200), (300, 300)])},
            ]  # fmt: skip
            ids = save_annotations(store, slide, objects)
            add_measurement(store, slide.id, ids[0], "tils", {"tils_percent": 20.0}, {"by": "pathologist"})
    return target


def _keys(world: World) -> None:
    with Store.open(world.centre) as centre:
        centre.use_system_reader("coordinator")
        keyring.init_keys(centre, centre=True)
        (world.root / "centre.pub").write_text(keyring.own_public(centre).to_json())
        for site, path in world.sites.items():
            with Store.open(path) as store:
                _reader(store, site)
                keyring.init_keys(store, centre=False)
                (world.root / f"{site}.pub").write_text(keyring.own_public(store).to_json())
                keyring.trust_file(store, world.root / "centre.pub")
            keyring.trust_file(centre, world.root / f"{site}.pub")


def export(site_path: Path, out: Path, since: Path | None = None) -> Path:
    with Store.open(site_path) as store:
        site = store.site_code()
        _reader(store, site)
        export_package(store, out, since)
    return out


def edit_lesion(site_path: Path, code: str, changes: dict) -> None:
    with Store.open(site_path) as store:
        _reader(store, store.site_code())
        subject = store.subject_by_code(code)
        lesion = records.lesion_named(store, subject.id, EDITED_LESION)
        records.update_lesion(store, lesion.id, changes)


def exchange_world(tmp_path_factory) -> World:
    """The shared world (see module doc), built once per session (~25 s beyond the demo store)."""
    if "world" in _BUILT:
        return _BUILT["world"]  # type: ignore[return-value]
    demo_root, manifest = demo_store(tmp_path_factory)
    root = tmp_path_factory.mktemp("exchange")
    world = World(root, root / "centre", manifest=manifest)
    world.sites["IT99"] = Path(shutil.copytree(demo_root, root / "IT99"))
    world.sites["IT01"] = _import_site(manifest, 1, "IT01", root / "IT01")
    world.sites["IT02"] = _import_site(manifest, 2, "IT02", root / "IT02")
    _keys(world)
    p = world.packages
    for site, path in world.sites.items():
        p[site] = export(path, root / f"{site}.pkg")
    # a second workstation of site IT01 (a copy of its store); both edit one lesion and export --since
    world.sites["IT01b"] = Path(shutil.copytree(world.sites["IT01"], root / "IT01b"))
    edit_lesion(world.sites["IT01"], "IT01-0001", {"recist_status": "target"})
    edit_lesion(world.sites["IT01b"], "IT01-0001", {"recist_status": "non-target", "notes": "second reading"})
    p["IT01a"] = export(world.sites["IT01"], root / "IT01a.pkg", since=p["IT01"])
    p["IT01b"] = export(world.sites["IT01b"], root / "IT01b.pkg", since=p["IT01"])
    _BUILT["world"] = world
    return world


def centre_copy(world: World, target: Path) -> Path:
    return Path(shutil.copytree(world.centre, target))
