"""convflow: the convolutional-network chapter of Goodfellow et al. as a Keras pipeline."""

from pathlib import Path

from setuptools import find_packages, setup

# Pinned to the set that was installed and tested together (README, "Versions").
TENSORFLOW = "2.21.0"
FOLDERS = ("pipelines", "components", "models")
DASK = "apache-beam[dask]==2.77.0"
POSTGRES = "psycopg2-binary==2.9.13"
REQUIRES = [
    "keras==3.15.*",
    "keras-cv==0.9.0",
    "apache-beam==2.77.0",
    "mlflow==3.17.*",
    "tensorflow-datasets==4.9.10",
    # tensorflow-datasets 4.9.10 imports it without declaring it.
    "importlib_resources>=6",
    "numpy>=1.26",
    "pyyaml>=6",
    "tqdm>=4.66",
    "matplotlib>=3.8",
    "pillow>=10",
    # COCO mAP for the detection pipeline: the reference implementation (Lin et al. 2014).
    "pycocotools==2.0.11",
    # Distance transforms for U-Net's border weight map (segmentation).
    "scipy==1.17.1",
    # convflow schedule: cron expressions (ticks, time zones, DST) without a parser of our own.
    "croniter==7.0.0",
]

AUTH = ["mlflow[auth]==3.17.*", "Flask-WTF==1.3.0"]
TEST_REQUIRES = ["pytest>=8", "ruff>=0.6", "jax==0.10.2", "jaxlib==0.10.2", DASK, POSTGRES, *AUTH]

setup(
    name="convflow",
    version="0.1.0",
    description="CNNs from Goodfellow et al. ch. 9 as a cached, MLflow-tracked Keras pipeline",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The user's top-level folders install as one namespace, convflow.* (nothing installs a
    # bare `models` or `pipelines`, which other projects' modules also use).
    packages=[f"convflow.{p}" for p in find_packages(include=[f"{d}*" for d in FOLDERS])],
    package_dir={f"convflow.{d}": d for d in FOLDERS},
    # The zoo's metadata (names, kinds, arguments, parameter counts) for `convflow models` and
    # config checks without Keras; written by `python -m convflow.models.catalog`.
    package_data={"convflow.models": ["catalog.json"]},
    install_requires=[*REQUIRES, f"tensorflow-cpu=={TENSORFLOW}"],
    extras_require={
        # The CUDA build for GPU machines: `pip install -e .[gpu]` after uninstalling
        # tensorflow-cpu (pip cannot swap one distribution for another by extras alone).
        "gpu": [f"tensorflow[and-cuda]=={TENSORFLOW}"],
        # Beam's DaskRunner on a dask.distributed cluster, through Beam's own extra.
        "dask": [DASK],
        # MLflow's tracking server on PostgreSQL (mlflow/server.sh MLFLOW_BACKEND=postgresql://…).
        "postgres": [POSTGRES],
        # mlflow/server.sh with MLFLOW_AUTH=1: MLflow's basic-auth app (Flask-WTF for CSRF).
        "auth": AUTH,
        # What the tests need on top of the main job (scripts/test.sh installs it): JAX (CPU
        # wheels, 0.38 GB; torch's was 0.86 GB) is the second Keras backend the zoo is tested on.
        # The tests start a Dask cluster, an MLflow server on PostgreSQL and one with auth.
        "test": TEST_REQUIRES,
        "dev": TEST_REQUIRES,
    },
    entry_points={"console_scripts": ["convflow=convflow.pipelines.cli:entry"]},
)
