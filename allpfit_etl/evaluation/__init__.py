"""Measuring the analysers against labelled conversations (``allpfit-etl eval``)."""
