"""Runtimes carry a Plan out. Only the modules here import `docker`."""
