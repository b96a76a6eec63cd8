"""One training's use of Spark: the session, the Spark loader, the sample the driver tunes and
evaluates on, and the candidate lists on the executors. `training.train` calls these when
`TrainConfig.engine` is `spark`, and says in its output what ran where (`WHERE`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from features.loader import Dataset
from features.schema import CLIENT
from scoring.recommender import Recommender
from training.config import TrainConfig
from training.spark.candidates import precompute_on_spark
from training.spark.engine import SparkEngine
from training.spark.load import load_dataset_spark
from training.spark.session import spark_session

log = logging.getLogger(__name__)

#: What runs where with `--engine spark` today, printed with every Spark training.
WHERE = ("engine spark: on Spark: reading and validating the data, the client x item evidence, ALS (MLlib), "
         "basket pair counts, the candidate lists (mapInPandas over the scoring code). On the driver, in pandas: "
         "the validated lines (collected once), catalogue, segments, history arrays, kNN and bought-together "
         "lists, upsell, bundle mining from the pair counts, the value model, tuning and evaluation.")


@dataclass
class SparkRun:
    """The session of one training and the engine fitted models use."""

    config: TrainConfig
    spark: Any
    engine: SparkEngine

    @classmethod
    def start(cls, config: TrainConfig) -> SparkRun:
        spark = spark_session(config)
        return cls(config, spark, SparkEngine(spark, blocks=min(config.spark_shuffle_partitions, 10)))

    def load(self, data: str | Path) -> Dataset:
        return load_dataset_spark(self.spark, str(data), non_merchandise=self.config.non_merchandise,
                                  merchandise_allow=self.config.merchandise_allow)

    def sample(self, dataset: Dataset) -> tuple[Dataset, str]:
        """(the dataset tuning and evaluation run on, a sentence saying which clients): at most
        `spark_sample_clients` clients, a seeded draw, with all their lines."""
        clients = np.sort(dataset.transactions[CLIENT].unique().astype(object))
        cap = self.config.spark_sample_clients
        if len(clients) <= cap:
            return dataset, f"tuning and evaluation on the driver: all {len(clients):,} clients"
        chosen = np.random.default_rng(self.config.seed).choice(clients, size=cap, replace=False)
        tx = dataset.transactions
        sample = dataset.with_transactions(tx[tx[CLIENT].isin(chosen)].reset_index(drop=True))
        return sample, (f"tuning and evaluation on the driver: a sample of {cap:,} of {len(clients):,} clients "
                        f"(seed {self.config.seed}); the model `train` registers is fitted on all of them")

    def candidates(self, rec: Recommender) -> float:
        return precompute_on_spark(self.spark, rec, self.config.spark_work_dir,
                                   partitions=self.config.spark_shuffle_partitions)

    def describe(self) -> dict[str, Any]:
        """What the model's meta and the MLflow run record of this engine."""
        return {"master": self.spark.sparkContext.master, "spark_version": self.spark.version}

    def stop(self) -> None:
        self.spark.stop()
