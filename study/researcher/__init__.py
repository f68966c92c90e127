"""The researcher's side: the views under /researcher/, the dashboard's reads
(`dashboard`), and the researcher's writes (`services`: accuracy shown or hidden, a
participant's withdrawal). Top of the study layers: it may use every other study package.
"""
