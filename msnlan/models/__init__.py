"""msnlan.models"""
