from tasks.bench_detect import run_detect_bench


def test_bench_in_two_workers_judges_the_same_readings_as_one_process():
    one = run_detect_bench(40_000, chunk_readings=10_000, workers=1)
    two = run_detect_bench(40_000, chunk_readings=10_000, workers=2)

    assert (one["workers"], two["workers"], two["polars_threads"]) == (1, 2, 1)
    assert one["readings"] == two["readings"] == 40_000
    for key in ("qc_flag_counts", "anomalies", "anomalies_by_method"):
        assert one[key] == two[key]
    steps = two["steps"]
    assert (
        abs(
            steps["qc_flags"]["seconds"]
            + steps["detectors"]["seconds"]
            - steps["qc_flags_and_detectors"]["seconds"]
        )
        < 0.01
    )
    assert two["peak_rss_mb_per_worker"] > 0
