"""Gaussian mixture: each customer's segment is its most likely component."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from sklearn.mixture import GaussianMixture
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data


class SampleInitGaussianMixture(GaussianMixture):
    """A :class:`~sklearn.mixture.GaussianMixture` whose EM on all rows starts from a fit on
    a seeded sample.

    The default start (KMeans on all rows, then EM from it) costs tens of passes over the
    data; fitted on a sample, the mixture is already close to an optimum, and EM on all rows
    converges in a few passes, at the same log-likelihood (bench-results/RESULTS.md). Like any
    EM start it can land in another local optimum.

    Parameters
    ----------
    init_sample_size : int, default=None
        Above this many rows, the mixture is first fitted (with every other parameter as
        given) on a seeded sample of this many rows, and its weights, means and precisions
        start EM on all rows (one initialisation). ``None``, or fewer rows, fits as
        :class:`~sklearn.mixture.GaussianMixture` does.
    **GaussianMixture parameters
        ``n_components``, ``covariance_type``, ``tol``, ``reg_covar``, ``max_iter``,
        ``n_init``, ``init_params``, ``weights_init``, ``means_init``, ``precisions_init``,
        ``random_state`` (also seeds the sample), ``warm_start``, ``verbose``,
        ``verbose_interval``: as in :class:`~sklearn.mixture.GaussianMixture`.

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_, converged_, n_iter_,
    lower_bound_, n_features_in_
        As in :class:`~sklearn.mixture.GaussianMixture`, from the EM on all rows.
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: Any = None,
        means_init: Any = None,
        precisions_init: Any = None,
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        init_sample_size: int | None = None,
    ) -> None:
        super().__init__(
            n_components=n_components,
            covariance_type=covariance_type,
            tol=tol,
            reg_covar=reg_covar,
            max_iter=max_iter,
            n_init=n_init,
            init_params=init_params,
            weights_init=weights_init,
            means_init=means_init,
            precisions_init=precisions_init,
            random_state=random_state,
            warm_start=warm_start,
            verbose=verbose,
            verbose_interval=verbose_interval,
        )
        self.init_sample_size = init_sample_size

    def fit_predict(self, X: Any, y: object = None) -> np.ndarray:
        """Fit the mixture (from a sample's fit on large data) and label every row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows.
        y : None
            Ignored.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            The most likely component of each row.
        """
        size = self.init_sample_size
        if size is not None and (not isinstance(size, Integral) or size < 2):
            raise ValueError(f"init_sample_size must be an int >= 2 or None, got {size!r}")
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        if size is None or len(X) <= size:
            return super().fit_predict(X, y)
        params = self.get_params()
        del params["init_sample_size"]
        rows = check_random_state(self.random_state).choice(len(X), size=size, replace=False)
        start = GaussianMixture(**params).fit(X[np.sort(rows)])
        full = GaussianMixture(
            **{
                **params,
                "n_init": 1,
                "warm_start": False,
                # Every parameter comes from the sample's fit; this only skips the KMeans.
                "init_params": "random_from_data",
                "weights_init": start.weights_,
                "means_init": start.means_,
                "precisions_init": start.precisions_,
            }
        )
        labels = full.fit_predict(X)
        for name, value in vars(full).items():
            if name.endswith("_") and not name.startswith("_"):
                setattr(self, name, value)
        return labels


def build(
    *, random_state: int | None = None, n_rows: int | None = None, **params: Any
) -> SampleInitGaussianMixture:
    """A Gaussian mixture with ``params`` (``n_rows`` unused: the sample start decides)."""
    return SampleInitGaussianMixture(random_state=random_state, **params)
