"""Point-in-time features (one block per source table), labels, and the feature dictionary.

Features as of a date use only data strictly before it; see :mod:`bankseg.features.build` for buckets and
engines and each block module for its columns and documented defaults.
"""

from bankseg.features.balances import build_balance_features
from bankseg.features.build import FeatureSettings, bucket_of, build_bucket_features, build_feature_table
from bankseg.features.customers import build_customer_features
from bankseg.features.dictionary import describe_feature, feature_dictionary
from bankseg.features.holdings import build_holding_features
from bankseg.features.interactions import build_interaction_features
from bankseg.features.labels import LABEL_COLUMNS, LabelSettings, build_labels, build_training_frame
from bankseg.features.transactions import build_transaction_features

__all__ = [
    "LABEL_COLUMNS",
    "FeatureSettings",
    "LabelSettings",
    "bucket_of",
    "build_balance_features",
    "build_bucket_features",
    "build_customer_features",
    "build_feature_table",
    "build_holding_features",
    "build_interaction_features",
    "build_labels",
    "build_training_frame",
    "build_transaction_features",
    "describe_feature",
    "feature_dictionary",
]
