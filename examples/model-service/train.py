"""Train the example model at image build time and save it with joblib.

The iris data set ships inside scikit-learn, so training needs no network. The model and a
small metadata file (feature count, class names) land in the output directory.
"""

import json
import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def train(output_dir: Path) -> None:
    iris = load_iris()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
    model.fit(iris.data, iris.target)
    output_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, output_dir / "model.joblib")
    metadata = {"n_features": int(iris.data.shape[1]), "classes": list(iris.target_names)}
    (output_dir / "metadata.json").write_text(json.dumps(metadata))


if __name__ == "__main__":
    train(Path(sys.argv[1] if len(sys.argv) > 1 else "/opt/model"))
