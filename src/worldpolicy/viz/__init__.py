"""Visualisation of action chunks and rollouts: plots, animations, side-by-side videos, HTML run reports.

matplotlib/PyAV are imported inside the functions, so importing this package stays light.
"""

from .plots import plot_action_timeseries, plot_ee_path, plot_joints, plot_prediction, prediction_figures

__all__ = ["plot_action_timeseries", "plot_ee_path", "plot_joints", "plot_prediction", "prediction_figures"]
