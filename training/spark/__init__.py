"""`python -m training train --engine spark`: the heavy steps of training on Apache Spark.

What runs where (docs/spark.md says the same, with the commands):
- `load`: reading and validating the data contract (Parquet or CSV, any Spark path: `s3a://`,
  `abfss://`), the transactions' rules on the executors, the same rejection reasons and counts as
  `features.loader`; the small tables (items, clients, packages) are read by Spark and validated
  by the loader's own code on the driver.
- `evidence`: the client x item evidence (occasions less returns, BM25) aggregated on Spark.
- `als`: Spark MLlib's ALS (`implicitPrefs`) with the recipe's CF settings.
- `cooc`: basket pair counts by a self-join on Spark.
- `candidates`: each known client's candidate lists, ranked on the executors by the `scoring`
  code itself (`mapInPandas` over partitions of client indices).
- On the driver, in pandas, today: the validated lines (collected once), the catalogue, segments,
  history arrays, the item-to-item and client kNN lists, upsell, bundle mining from the pair
  counts, the value model, and tuning and evaluation (on a sample of clients, stated in the output).
`engine.SparkEngine` plugs the Spark steps into `training.fit.fit_recommender` (`training.engine`).
"""
