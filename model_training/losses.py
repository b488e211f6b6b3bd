"""The loss on the expected age when the recipe asks for a group term (group_bias_weight).

The L1 on the expected age tolerates a model that makes one ethnicity's adults younger on average
as long as its absolute errors are small; balanced exposure at 224 px moved every group's level
without closing that gap (README, Model). The group term penalises it directly.
"""

from __future__ import annotations

import keras
from keras import ops


class L1WithGroupBias(keras.losses.Loss):
    """l1_weight · |expected − age| per face, plus group_weight · Σ_g (n_g / batch) · e_g², where e_g
    is the mean signed error of the batch's adults of group g (n_g of them; `groups` groups). y_true
    is (age, group) with group from pipeline.adult_groups (-1: not counted)."""

    def __init__(self, l1_weight: float, group_weight: float, groups: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.l1_weight, self.group_weight, self.groups = l1_weight, group_weight, groups

    def call(self, y_true, y_pred):
        age, group = y_true[:, 0], ops.cast(y_true[:, 1], "int32")
        err = y_pred - age
        member = ops.cast(ops.expand_dims(group, 1) == ops.arange(self.groups, dtype="int32"), err.dtype)
        count = ops.sum(member, axis=0)
        mean = ops.sum(member * ops.expand_dims(err, 1), axis=0) / ops.maximum(count, 1.0)
        penalty = ops.sum(count * mean**2) / ops.cast(ops.shape(err)[0], err.dtype)
        return self.l1_weight * ops.abs(err) + self.group_weight * penalty  # its batch mean: weighted L1 + term


def age_mae(y_true, y_pred):
    """|expected − age| when the target also carries the group (see L1WithGroupBias)."""
    return ops.abs(y_pred - y_true[:, 0])
