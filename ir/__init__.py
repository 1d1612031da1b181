"""npuc.ir"""
