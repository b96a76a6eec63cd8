"""The SparkSession the trainer runs on: built from `TrainConfig`, quiet, Arrow on.

Why these settings: Arrow moves pandas frames to and from the JVM without pickling rows;
shuffle partitions are few by default because a local run on two cores drowns in task overhead
with Spark's 200; the session time zone is UTC because the data contract's times are naive UTC.
The Python workers run the driver's own interpreter (`PYSPARK_PYTHON`, when unset), so in local
mode they import the same `scoring` code; on a cluster the executors need the project installed
(a wheel; docs/spark.md).
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any

from training.config import TrainConfig

log = logging.getLogger(__name__)

#: Spark's own logs below this level are dropped (its INFO lines would bury the trainer's).
SPARK_LOG_LEVEL = "ERROR"


def spark_settings(config: TrainConfig) -> dict[str, str]:
    """The session settings the trainer sets (a cluster's own defaults stay for the rest)."""
    partitions = str(config.spark_shuffle_partitions)
    return {"spark.driver.memory": config.spark_driver_memory,
            "spark.driver.maxResultSize": config.spark_max_result_size,
            "spark.sql.shuffle.partitions": partitions,
            "spark.default.parallelism": partitions,
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.sql.session.timeZone": "UTC",
            "spark.ui.showConsoleProgress": "false",
            "spark.ui.enabled": "false"}


def launched_by_spark() -> bool:
    """True when this Python process was started by a running Spark driver (spark-submit, a
    Databricks job), which hands it the JVM's gateway: then `--master` and `--driver-memory`
    were spark-submit's to set (as `--conf spark.driver.maxResultSize` is), and the trainer must not
    override them."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def spark_session(config: TrainConfig, app_name: str = "crm-recommender-train") -> Any:
    """A SparkSession on `config.spark_master` (an existing session is reused, as on Databricks).

    Raises RuntimeError naming the cause when Java is missing: Spark 4 needs Java 17."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if config.spark_master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - the `spark` extra is not installed
        raise RuntimeError("--engine spark needs pyspark: pip install -e '.[spark]'") from exc
    builder = SparkSession.builder.appName(app_name)
    settings = spark_settings(config)
    if launched_by_spark():  # spark-submit or the platform chose the master and started the driver's JVM
        settings.pop("spark.driver.memory")
        settings.pop("spark.driver.maxResultSize")  # the driver's, fixed when its context started
        log.info("driver started by spark-submit or the platform: its master, driver memory and result size apply")
    else:
        builder = builder.master(config.spark_master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start: say why in one sentence
        if "JAVA_GATEWAY_EXITED" in str(exc) or "Java gateway" in str(exc):
            raise RuntimeError("Spark could not start its JVM: is Java 17 installed (`make java-bin`, "
                               "Debian's openjdk-17-jre-headless) and `java` on PATH?") from exc
        raise
    spark.sparkContext.setLogLevel(SPARK_LOG_LEVEL)
    log.info("spark %s on %s (default parallelism %d, shuffle partitions %s)", spark.version,
             spark.sparkContext.master, spark.sparkContext.defaultParallelism,
             spark.conf.get("spark.sql.shuffle.partitions"))
    return spark
