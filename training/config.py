"""Trainer configuration: every knob read from the environment in one place, with its default.

Each key is declared once below: its type, its default and what it changes. The variable is the
field's name in capitals unless the field names it (`threads` is TRAIN_THREADS); an empty variable
counts as unset, and a value that does not parse stops the trainer with a validation error naming
the variable. The README's configuration table mirrors this module (tests/unit/test_configuration.py
checks it). Command-line flags override these values for one run (`config.model_copy(update=...)`);
nothing else reads the environment.
"""
from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from envconfig import (
    CLIENT_STATE_DEFAULT,
    EVENTS_DB_URL_DEFAULT,
    MODEL_NAME_DEFAULT,
    REDIS_CLUSTER_DEFAULT,
    TENANT_DEFAULT,
    ClientStateWhere,
    EnvSettings,
    Tenant,
    TrackingUri,
    comma_separated,
)
from scoring.contract import MODEL_UPDATES_CHANNEL


class TrainConfig(EnvSettings):
    """What the trainer does, and how hard it tries."""

    tracking_uri: TrackingUri = Field("sqlite:///var/mlflow.db", validation_alias="MLFLOW_TRACKING_URI",
                              description="Where runs and the model registry live; a relative sqlite path is "
                                          "made absolute from the working directory.")
    model_name: str = Field(MODEL_NAME_DEFAULT, description="The registered model's name.")
    experiment: str = Field(MODEL_NAME_DEFAULT, validation_alias="MLFLOW_EXPERIMENT",
                            description="The experiment runs are logged under.")
    tenant: Tenant = Field(TENANT_DEFAULT, description="The shop whose erasures are honoured (the service's TENANT): "
                                               "only its lines of ERASURES_FILE and its Redis erasure set.")
    threads: int = Field(0, ge=0, validation_alias="TRAIN_THREADS",
                         description="Threads for implicit and BLAS, and rankers evaluated at once (0: all cores).")
    seed: int = Field(0, validation_alias="TRAIN_SEED",
                      description="One seed for every random choice (ALS init, held-out items).")
    test_days: int = Field(60, gt=0, validation_alias="TRAIN_TEST_DAYS",
                             description="The last days held out as the test.")
    tune_days: int = Field(30, gt=0, validation_alias="TRAIN_TUNE_DAYS",
                             description="The last days of the training part used to choose hyper-parameters.")
    k: int = Field(10, ge=1, validation_alias="TRAIN_K", description="Suggestions scored per query.")
    als_factors: Annotated[tuple[int, ...], NoDecode] = Field(
        (16, 32), description="Candidate factor counts tried on the inner split (comma-separated).")
    als_regularization: Annotated[tuple[float, ...], NoDecode] = Field(
        (0.05,), description="Candidate regularisation values tried (comma-separated).")
    als_iterations: int = Field(15, ge=1, description="ALS sweeps.")
    als_alpha: float = Field(0.5, description="Confidence scaling of the BM25-weighted evidence.")
    cf_algorithm: str = Field("als", description='"als" or "bpr".')
    recency_half_life_days: float = Field(45, gt=0,
                                          description="Half-life of a purchase's weight in replenishment scores.")
    cooc_shrinkage: float = Field(5, ge=0, description="Pseudo-baskets damping rare antecedents in bundle affinity.")
    cooc_neighbours: int = Field(100, ge=1, description="Items kept per item in the bought-together lists.")
    upsell_neighbours: int = Field(10, ge=1, description="Pricier alternatives kept per item.")
    bundle_discount: float = Field(0.10, ge=0, lt=1,
                                   description="Share taken off the sum of unit prices for a bundle offer.")
    bundle_min_lift: float = Field(3.0, description="How far above chance a bundle must sell (its lift shrunk "
                                                    "towards 1 by BUNDLE_LIFT_PRIOR pseudo-baskets).")
    bundle_min_baskets: int = Field(10, ge=1, description="How many baskets a bundle must sell in.")
    bundle_lift_prior: float = Field(10.0, ge=0, description="Pseudo-baskets pulling a bundle's lift towards 1, so a "
                                                             "few shared baskets cannot read as a strong bundle.")
    non_merchandise: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Item ids that are not merchandise (fees, deposits...) beyond those recognised from the "
                        "data; never offered (comma-separated).")
    merchandise_allow: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Item ids the trainer flagged as non-merchandise that are merchandise after all "
                        "(comma-separated).")
    currency: str = Field("", description='How money is written in reasons: a symbol before the amount ("$"), '
                                          'a code after it ("EUR"); empty: the number alone.')
    promotion_tolerance: float = Field(0.002, ge=0, description="How much worse than the champion a primary "
                                                                "metric may be (absolute).")
    redis_url: str | None = Field(None, description="Where to publish \"a new champion\" notices and read the "
                                                    "erasure set (optional).")
    client_state: ClientStateWhere = Field(
        CLIENT_STATE_DEFAULT, description="Where each client's state (factors, candidate lists, history, segments) lives: "
                             "\"model\", in the registered model's arrays (small shops), or \"redis\", one key per "
                             "client written before the alias moves, the model keeping the item side only.")
    client_state_redis_url: str | None = Field(
        None, description="The Redis client state is written to (unset: REDIS_URL); the service reads it through "
                          "its REDIS_URL, so both name the same Redis.")
    redis_cluster: bool = Field(
        REDIS_CLUSTER_DEFAULT, description="true: the client state Redis is a Redis Cluster (the service's REDIS_CLUSTER), written "
                           "through redis-py's cluster client.")
    client_state_grace_seconds: int = Field(
        3600, ge=0, description="How long client state of a model no alias points to any more stays in Redis "
                                "(services still serving it have this long to load the new version).")
    updates_channel: str = Field(MODEL_UPDATES_CHANNEL, validation_alias="MODEL_UPDATES_CHANNEL",
                                 description="The pub/sub channel the service listens on (its MODEL_UPDATES_CHANNEL).")
    erasures_file: str = Field("var/service-state/erasures.jsonl",
                               description="Clients erased on request (JSON lines with client_id and tenant), "
                                           "excluded from training.")

    events_db_url: TrackingUri = Field(
        EVENTS_DB_URL_DEFAULT, description="The service's event store: purchases posted through the API join "
                                               "the training data (de-duplicated against the folder), and its "
                                               "erasures are honoured.")

    engine: Literal["local", "spark"] = Field("local", validation_alias="TRAIN_ENGINE",
                                              description="Where the heavy steps run: `local` (pandas, implicit, "
                                                          "scipy, in this process) or `spark` (training/spark/).")
    spark_master: str = Field("local[*]", description="The Spark master of `--engine spark` (local[N], "
                                                      "spark://host:7077, yarn, k8s://...).")
    spark_driver_memory: str = Field("4g", description="spark.driver.memory of the session the trainer starts "
                                                       "(in local mode the executors live in the driver).")
    spark_max_result_size: str = Field("0", description="spark.driver.maxResultSize: what one job may "
                                                        "collect to the driver (0: no limit). The trainer "
                                                        "collects the validated lines by design, and Spark's "
                                                        "1g stopped it at 16x Complete Journey (23.5M lines); "
                                                        "the driver's memory is the real bound.")
    spark_shuffle_partitions: int = Field(8, ge=1, description="spark.sql.shuffle.partitions: small for local "
                                                               "mode, a few per executor core on a cluster.")
    spark_sample_clients: int = Field(100_000, ge=1, description="`--engine spark`: tuning and evaluation run "
                                                                 "on the driver on at most this many clients "
                                                                 "(a seeded sample); the final fit uses all.")
    spark_work_dir: str = Field("var/spark", description="Where the driver saves the fitted model for the "
                                                         "executors' candidate lists: on a cluster, a path "
                                                         "every executor can read (shared storage).")

    lapsing_days: int = Field(30, gt=0, description="Days without a purchase after which a client is lapsing.")
    inactive_days: int = Field(120, gt=0, description="Days without a purchase after which a client is inactive "
                                                      "(the inactive base: no mail but a win-back).")
    segment_period_days: int = Field(30, gt=0, description="How far back \"a period ago\" is: segments are compared "
                                                           "with theirs then, and the trend's recent window.")
    trend_baseline_days: int = Field(90, gt=0, description="The client's own past rate is measured over this many "
                                                           "days before the recent period.")
    change_threshold: float = Field(0.5, gt=0, description="A relative change of visits or spend against the "
                                                           "client's own past rate beyond this is a transition.")
    control_share: float = Field(0.05, ge=0.0, le=1.0, description="The service's persistent control group share: "
                                                                 "campaign audiences leave those clients out.")
    assignment_salt: str = Field("crm", description="The service's salt of the control hash (the same for both).")
    fatigue_max_shows: int = Field(3, ge=1, description="Campaigns: a client sent this many email or push answers "
                                                        "within FATIGUE_WINDOW_DAYS is left out.")
    fatigue_window_days: int = Field(14, ge=1, description="The window campaign fatigue counts sends in.")
    value_horizon_days: float = Field(30, gt=0, description="The period of the purchase probability, expected "
                                                            "purchases and expected revenue (days).")
    clv_horizon_days: float = Field(365, gt=0, description="The horizon of a client's lifetime value (days).")
    clv_annual_discount: float = Field(0.10, ge=0, description="Yearly discount rate of future revenue in the CLV.")

    _comma_separated = field_validator("als_factors", "als_regularization", "non_merchandise", "merchandise_allow",
                                        mode="before")(comma_separated)

    @property
    def workers(self) -> int:
        """Jobs the trainer runs at once (TRAIN_THREADS, 0 = one per core)."""
        return self.threads or os.cpu_count() or 1
