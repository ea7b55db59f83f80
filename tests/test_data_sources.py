"""Real data added as a user would, config only (issue 16): a data config in the user's BANKSEG_CONFIG_DIR folder,
a zipped CSV, registered models that never mix data sources, jobs that remember the data a model learned from."""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import zipfile
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from bankseg.cli import CONFIG_DIR, on_search_path
from bankseg.cli.settings import data_config, plain, use_source_names
from bankseg.data.adapters.flat import FlatSpec, load_flat_snapshot
from bankseg.models.registry import find_version, registry_name
from bankseg.models.tracking import logged_config

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BANKSEG_SHARED_DATA", ROOT.parent / "shared" / "data"))
CHURN_CSV = SHARED / "churn_modelling" / "Churn_Modelling.csv"
needs_churn_csv = pytest.mark.skipif(not CHURN_CSV.exists(), reason=f"{CHURN_CSV} missing")
# A small, fast model: these tests are about where things go, not how good the model is.
FAST = ["model.params.num_threads=1", "model.num_boost_round=60", "model.early_stopping_rounds=15",
        "model.params.num_leaves=7", "model.calibration_cv=null"]


def user_data_config(folder: Path, name: str, csv: Path) -> Path:
    """A user's own conf: data/<name>.yaml describing a Churn_Modelling-like CSV (zipped or not)."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "data" / f"{name}.yaml").write_text(
        f"name: {name}\nkind: flat\npath: {csv}\nsep: ','\nid_column: CustomerId\ndrop: [RowNumber, Surname]\n"
        "label: {column: Exited, positive: 1, negative: 0, name: churn}\ncategorical: [Geography, Gender]\n"
        "rename: {Age: age, Gender: gender}\n", encoding="utf-8")
    return folder


def zipped_sample(tmp_path: Path, rows: int = 3000) -> Path:
    """The first ``rows`` customers of Churn_Modelling as a zip archive holding one CSV."""
    csv = tmp_path / "bank_customers.csv"
    pd.read_csv(CHURN_CSV, nrows=rows).to_csv(csv, index=False)
    archive = tmp_path / "bank_customers.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(csv, csv.name)
    csv.unlink()
    return archive


def compose_job(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def run_command_line(job, name: str, overrides: list[str]):
    """Run ``job.main`` as its console script would with ``overrides``: Hydra's record of the command line is set
    and Hydra stays initialised (bankseg-tune composes each trial's config)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        try:
            with open_dict(cfg):
                del cfg["hydra"]
            return job.main(cfg)
        finally:
            HydraConfig.instance().cfg = None


# ------------------------------------------------------------------------------------------- the user folder
def test_a_data_config_in_the_bankseg_config_dir_folder_is_found(tmp_path, monkeypatch):
    user_data_config(tmp_path / "my_conf", "bankchurners", tmp_path / "x.csv")
    monkeypatch.setenv("BANKSEG_CONFIG_DIR", str(tmp_path / "my_conf"))
    for job in ("train", "tune", "promote", "report", "export", "score"):
        cfg = compose_job(job, ["data=bankchurners", f"paths.root_dir={tmp_path}"])
        assert cfg.data.name == "bankchurners" and cfg.data.path == str(tmp_path / "x.csv"), job


def test_without_the_variable_a_user_data_config_is_not_found(tmp_path, monkeypatch):
    monkeypatch.delenv("BANKSEG_CONFIG_DIR", raising=False)
    with pytest.raises(Exception, match="bankchurners"):
        compose_job("train", ["data=bankchurners"])


def test_a_bankseg_config_dir_that_is_no_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("BANKSEG_CONFIG_DIR", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"BANKSEG_CONFIG_DIR=.*missing is not a folder"):
        compose_job("train", [])


def test_tuned_experiments_are_written_to_the_user_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("BANKSEG_CONFIG_DIR", str(tmp_path))
    cfg = compose_job("tune", ["model=churn", f"paths.root_dir={tmp_path / 'elsewhere'}"])
    assert cfg.hpo.experiment_dir == f"{tmp_path}/experiment"
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "tuned_churn.yaml").write_text("# @package _global_\nmodel:\n  params:\n"
                                                              "    num_leaves: 5\n")
    assert compose_job("train", ["model=churn", "+experiment=tuned_churn"]).model.params.num_leaves == 5


def test_each_source_tunes_into_its_own_experiment_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BANKSEG_CONFIG_DIR", str(tmp_path))
    assert compose_job("tune", ["model=churn"]).hpo.experiment_name == "tuned_churn"  # the simulated bank's
    real = compose_job("tune", ["data=churn_modelling", "model=churn", "hpo=flat"])
    assert real.hpo.experiment_name == "tuned_churn_modelling_churn"
    assert on_search_path(tmp_path / "experiment" / "tuned_churn.yaml")
    assert on_search_path(Path(CONFIG_DIR) / "experiment" / "tuned_churn.yaml")
    assert not on_search_path(tmp_path / "elsewhere" / "experiment" / "tuned_churn.yaml")


@needs_churn_csv
@pytest.mark.slow
def test_bankseg_tune_writes_into_the_user_folder_and_train_finds_it_there(tmp_path, monkeypatch, capsys):
    from bankseg.cli import tune

    conf = user_data_config(tmp_path / "conf", "bank_a", zipped_sample(tmp_path))
    monkeypatch.setenv("BANKSEG_CONFIG_DIR", str(conf))
    store = [f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db", f"paths.root_dir={tmp_path / 'project'}"]
    run_command_line(tune, "tune", ["data=bank_a", "model=churn", "hpo.n_trials=2", *store, *FAST])
    written = conf / "experiment" / "tuned_bank_a_churn.yaml"
    assert written.exists() and not (tmp_path / "project" / "conf").exists()
    assert "Use: bankseg-train data=bank_a model=churn +experiment=tuned_bank_a_churn" in written.read_text()
    assert "is on no job's search path" not in capsys.readouterr().out
    tuned = compose_job("train", ["data=bank_a", "model=churn", "+experiment=tuned_bank_a_churn"])
    best = yaml.safe_load(written.read_text())["model"]["params"]
    assert dict(tuned.model.params, **best) == dict(tuned.model.params) and len(best) == 7


def test_rename_set_empty_on_the_command_line_clears_it(tmp_path):
    cfg = compose_job("train", ["data=churn_modelling", "data.rename={}", f"paths.root_dir={tmp_path}"])
    assert cfg.data.rename, "Hydra merges a mapping override: the configured renames are still there"
    assert data_config(cfg, overrides=["data=churn_modelling", "data.rename={}"])["rename"] == {}
    assert data_config(cfg, overrides=["data=churn_modelling"])["rename"] == dict(cfg.data.rename)


@needs_churn_csv
@pytest.mark.slow
def test_a_rename_cleared_on_the_command_line_is_what_the_model_learned_and_what_promotion_remembers(
        tmp_path, monkeypatch):
    from bankseg.cli import promote, train

    monkeypatch.setenv("BANKSEG_CONFIG_DIR", str(user_data_config(tmp_path / "conf", "bank_a",
                                                                  zipped_sample(tmp_path))))
    store = [f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db", f"paths.root_dir={tmp_path}"]
    run_command_line(train, "train", ["data=bank_a", "model=churn", "data.rename={}", "build_report=false",
                                      *store, *FAST])
    version = find_version("bankseg-bank_a-churn", "champion")
    assert logged_config(version.run_id)["data"]["rename"] == {}
    model = mlflow.pyfunc.load_model(f"models:/bankseg-bank_a-churn/{version.version}")
    assert {"Age", "Gender"} <= set(model.metadata.get_input_schema().input_names())
    # promote is not told about the renames: it rebuilds the hold-out with the cleared mapping the run logged
    run_command_line(promote, "promote", ["data=bank_a", "model=churn", *store])
    assert find_version("bankseg-bank_a-churn", "champion").tags["promotion.decision"] == "already_champion"


# ------------------------------------------------------------------------------------------- CSV, gzip, zip
@needs_churn_csv
@pytest.mark.parametrize("packing", ["zip", "gzip", "zip named .csv"])
def test_compressed_csvs_load_like_the_plain_file(tmp_path, packing):
    if packing == "gzip":
        path = tmp_path / "customers.csv.gz"
        with CHURN_CSV.open("rb") as src, gzip.open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        path = zipped_sample(tmp_path, rows=10_000)
        if packing == "zip named .csv":
            path = path.rename(tmp_path / "customers.csv")
    spec = {"name": "cm", "kind": "flat", "id_column": "CustomerId", "drop": ["RowNumber", "Surname"],
            "label": {"column": "Exited", "positive": 1, "name": "churn"}, "categorical": ["Geography", "Gender"]}
    packed = load_flat_snapshot(FlatSpec.from_dict({**spec, "path": str(path)}), key=b"k" * 16)
    plain = load_flat_snapshot(FlatSpec.from_dict({**spec, "path": str(CHURN_CSV)}), key=b"k" * 16)
    pd.testing.assert_frame_equal(packed, plain)


def test_a_zip_holding_several_files_is_refused_by_name(tmp_path):
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.csv", "x,y\n1,0\n")
        zf.writestr("b.csv", "x,y\n1,0\n")
    with pytest.raises(ValueError, match=r"two.zip is a zip archive holding 2 files \['a.csv', 'b.csv'\]"):
        FlatSpec.from_dict({"name": "t", "kind": "flat", "path": str(archive),
                            "label": {"column": "y", "positive": 1, "name": "churn"}})


def test_bytes_that_are_not_text_say_which_setting_to_change(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("name,y\nJosé,1\nZoë,0\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.csv is not utf-8 text .*set `encoding:`"):
        FlatSpec.from_dict({"name": "t", "kind": "flat", "path": str(path),
                            "label": {"column": "y", "positive": 1, "name": "churn"}})


# ------------------------------------------------------------------------------------ registry per source
def train_source(tmp_path: Path, name: str, *extra: str):
    """Train churn on the user's data config ``name`` into the test store; returns the composed config."""
    from bankseg.cli import train

    cfg = compose_job("train", [f"data={name}", "model=churn", f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
                                f"paths.root_dir={tmp_path}", "build_report=false", *FAST, *extra])
    train.main(cfg)
    return cfg


@needs_churn_csv
@pytest.mark.slow
def test_a_zipped_csv_described_in_the_user_folder_trains_and_registers_under_its_own_name(tmp_path, monkeypatch):
    monkeypatch.setenv("BANKSEG_CONFIG_DIR", str(user_data_config(tmp_path / "conf", "bankchurners",
                                                                  zipped_sample(tmp_path))))
    train_source(tmp_path, "bankchurners")
    version = find_version("bankseg-bankchurners-churn", "champion")
    run = mlflow.MlflowClient().get_run(version.run_id)
    assert run.data.metrics["test/auc"] > 0.75 and run.data.metrics["test/n"] == pytest.approx(600, abs=1)
    assert version.tags["bankseg.data_source"] == "bankchurners"
    assert find_version("bankseg-churn", "champion") is None, "a real source took the simulated bank's name"


def test_the_simulated_default_keeps_the_plain_names():
    cfg = use_source_names(compose_job("train", ["model=churn"]))
    assert cfg.model.registered_name == "bankseg-churn"
    assert use_source_names(compose_job("export", [])).models.upgrade.registered_name == "bankseg-upgrade"
    berka = use_source_names(compose_job("train", ["model=personas", "data=berka"]))
    assert berka.model.registered_name == "bankseg-berka-personas"


def test_every_job_names_a_model_by_its_data_source_through_one_function(tmp_path):
    simulated = compose_job("export", [f"paths.root_dir={tmp_path}"])
    real = compose_job("train", ["data=churn_modelling", f"paths.root_dir={tmp_path}"])
    assert registry_name(simulated, "segmenter") == "bankseg-segmenter"
    assert registry_name(real, "churn") == "bankseg-churn_modelling-churn"
    assert registry_name(plain(real), "personas") == "bankseg-churn_modelling-personas"  # a run's logged config
    assert registry_name(compose_job("score", ["registry.prefix=bankseg-pilot"]), "segmenter") == \
        "bankseg-pilot-segmenter"
    with pytest.raises(ValueError, match=r"no registry.prefix"):
        registry_name({"data": {"name": "x"}}, "churn")


@needs_churn_csv
@pytest.mark.slow
def test_two_sources_never_share_a_registered_model_and_promotion_refuses_to_mix_them(tmp_path, monkeypatch):
    from bankseg.cli import promote

    conf = tmp_path / "conf"
    sample = zipped_sample(tmp_path)
    user_data_config(conf, "bank_a", sample)
    user_data_config(conf, "bank_b", sample)
    monkeypatch.setenv("BANKSEG_CONFIG_DIR", str(conf))
    train_source(tmp_path, "bank_a")
    train_source(tmp_path, "bank_b")
    a, b = find_version("bankseg-bank_a-churn", "champion"), find_version("bankseg-bank_b-churn", "champion")
    assert a is not None and b is not None and a.run_id != b.run_id
    assert find_version("bankseg-bank_a-churn", "challenger").version == a.version  # b took no alias of a

    # forcing one name on both sources: the registry accepts it, promotion refuses to compare them
    train_source(tmp_path, "bank_b", "registry.prefix=bankseg-bank_a")
    cfg = compose_job("promote", ["data=bank_a", "model=churn", f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
                                  f"paths.root_dir={tmp_path}"])
    with pytest.raises(ValueError, match=r"data source.*'bank_b'"):
        promote.main(cfg)
    assert find_version("bankseg-bank_a-churn", "champion").version == a.version


# --------------------------------------------------------------------------------------- jobs remember
@pytest.mark.slow
def test_export_after_train_needs_no_data_path(trained_bank, tmp_path):
    """The models were trained with data.path=<a temporary bank>; export is not told where it is."""
    from bankseg.cli import export

    trained_bank.configure()
    cfg = compose_job("export", [f"mlflow.tracking_uri={trained_bank.mlflow_cfg['tracking_uri']}",
                                 f"paths.root_dir={tmp_path}", f"result_file={tmp_path}/segmenter.json"])
    assert not Path(cfg.data.path).exists()  # the default data/simulated of this folder
    export.main(cfg)
    exported = find_version("bankseg-segmenter", "challenger")
    run = mlflow.MlflowClient().get_run(exported.run_id)
    assert run.data.params["data.path"] == str(trained_bank.data_path)
    assert run.data.tags["bankseg.data_source"] == "synthetic"
    assert exported.tags["bankseg.data_source"] == "synthetic"
    assert str(find_version("bankseg-segmenter", "champion").version) == trained_bank.segmenter_version


@pytest.mark.slow
def test_the_segmenter_knows_the_source_it_serves_and_refuses_another_sources_data(trained_bank, tmp_path, caplog):
    from bankseg.cli import export, score

    trained_bank.configure()
    store = [f"mlflow.tracking_uri={trained_bank.mlflow_cfg['tracking_uri']}", f"paths.root_dir={tmp_path}"]
    with caplog.at_level(logging.INFO, logger="bankseg.cli.settings"):
        export.main(compose_job("export", [*store, f"result_file={tmp_path}/segmenter.json"]))
    assert f"data.path={trained_bank.data_path} (the training run of bankseg-churn v" in caplog.text
    version = find_version("bankseg-segmenter", "challenger")
    model = mlflow.pyfunc.load_model(f"models:/bankseg-segmenter/{version.version}")
    assert model.metadata.metadata["bankseg.data_source"] == "synthetic"
    assert model.unwrap_python_model().data_source == "synthetic"
    # a real source forced onto the simulated bank's names gets the simulated bank's segmenter: refused unread
    cfg = compose_job("score", [*store, "data=churn_modelling", "registry.prefix=bankseg", "as_of=2020-01-01",
                                f"model_version={version.version}", f"out_dir={tmp_path}/scores"])
    with pytest.raises(ValueError, match=r"bankseg-segmenter version \d+ serves data source 'synthetic', "
                                         r"not 'churn_modelling'"):
        score.main(cfg)
    assert not (tmp_path / "scores").exists()
