"""The learned detector per station: labels, training, stored models, and its nightly anomalies."""
